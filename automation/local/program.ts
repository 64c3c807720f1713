// The emulated engine's program runner: runs the real infra/ program under Pulumi mocks and returns what it
// declared. Each run is a fresh Node process (programChild.ts), so Pulumi's global runtime state never
// carries over from one `up` to the next.
import { spawn } from "node:child_process";
import * as path from "node:path";
import type { ConfigMap } from "@pulumi/pulumi/automation";
import type { ChildOutput } from "./programChild";

export interface DeclaredResource {
  /** Pulumi type token, e.g. "aws:s3/bucket:Bucket". */
  type: string;
  /** Logical name. */
  name: string;
  /** Physical id the emulation assigned (deterministic per stack and name). */
  id: string;
  /** Inputs as plain resolved values (secrets unwrapped: keep them out of logs). */
  inputs: Record<string, unknown>;
  /** Outputs the emulated provider reported (inputs plus ARNs, domain names and the like). */
  state: Record<string, unknown>;
}

export interface ProgramResult {
  /** Custom resources in registration order (components carry no inputs and are left out). */
  resources: DeclaredResource[];
  /** Stack outputs, resolved. */
  outputs: Record<string, unknown>;
}

/** The program failed (for example a ConfigError); `message` is the program's own, verbatim. */
export class ProgramError extends Error {
  constructor(
    message: string,
    /** The name of the error the program threw ("ConfigError" for bad stack config). */
    readonly programErrorName: string,
    /** Resources the program had declared when it failed (0: before any; undefined: the child crashed). */
    readonly declaredResources: number | undefined,
  ) {
    super(message);
    this.name = "ProgramError";
  }
}

const CHILD = path.join(__dirname, "programChild.ts");

export function runProgram({ stackName, config }: { stackName: string; config: ConfigMap }): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--require", require.resolve("tsx/cjs"), CHILD], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      let output: ChildOutput;
      try {
        output = JSON.parse(stdout) as ChildOutput;
      } catch {
        reject(new ProgramError(`the program exited with code ${code} without a result: ${stderr.trim().split("\n").slice(-5).join(" | ")}`, "Crash", undefined));
        return;
      }
      if (output.ok) resolve(output.result);
      else reject(new ProgramError(output.error.message, output.error.name, output.declared));
    });
    child.stdin.end(JSON.stringify({ stackName, config }));
  });
}
