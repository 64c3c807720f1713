// The emulated engine's program runner: runs the real infra/ program under Pulumi mocks and returns what it
// declared. The runs happen in one long-lived worker process (programWorker.ts), which keeps the Pulumi SDKs
// loaded and evaluates the program afresh, with fresh Pulumi runtime state, on every run: loading the SDKs in a
// new process for each `up` cost more than a second. The worker never keeps this process alive while idle.
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import type { ConfigMap } from "@pulumi/pulumi/automation";
import type { WorkerReply, WorkerRequest } from "./programWorker";

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

const WORKER = path.join(__dirname, "programWorker.ts");
/** Lines of the worker's stderr kept to explain a crash. */
const STDERR_LINES = 5;

interface Pending {
  resolve(result: ProgramResult): void;
  reject(err: ProgramError): void;
}

class ProgramWorker {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderr: string[] = [];
  private readonly killOnExit = () => this.child.kill();
  exited = false;

  constructor() {
    // A process group of its own (detached: a new group and session, https://nodejs.org/api/child_process.html#optionsdetached):
    // a terminal's Ctrl-C reaches the whole foreground group, and a worker killed by it fails the revert's `up`. The
    // worker still ends with this process: it exits when the IPC channel closes (programWorker.ts).
    this.child = spawn(process.execPath, ["--require", require.resolve("tsx/cjs"), WORKER], { stdio: ["ignore", "ignore", "pipe", "ipc"], serialization: "json", detached: true });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.stderr = [...this.stderr, ...chunk.split("\n").filter((l) => l.trim() !== "")].slice(-STDERR_LINES)));
    this.child.on("message", (reply: WorkerReply) => this.settle(reply));
    this.child.on("error", (err) => this.crashed(err.message));
    this.child.on("close", (code, signal) => this.crashed(signal ? `signal ${signal}` : `code ${code}`));
    process.once("exit", this.killOnExit);
    this.idle();
  }

  run(stackName: string, config: ConfigMap): Promise<ProgramResult> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.busy();
      // A worker that is exiting cannot take the run: its exit fails every pending run (crashed below).
      this.child.send({ id, stackName, config } satisfies WorkerRequest, (err) => err && this.child.kill());
    });
  }

  private settle({ id, output }: WorkerReply): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.idle();
    if (output.ok) p.resolve(output.result);
    else p.reject(new ProgramError(output.error.message, output.error.name, output.declared));
  }

  private crashed(how: string): void {
    if (this.exited) return;
    this.exited = true;
    process.off("exit", this.killOnExit);
    const tail = this.stderr.join(" | ");
    for (const p of this.pending.values()) p.reject(new ProgramError(`the program runner exited with ${how} without a result${tail ? `: ${tail}` : ""}`, "Crash", undefined));
    this.pending.clear();
  }

  // While runs are pending the worker keeps this process alive (their results are awaited); idle, it does not.
  private busy(): void {
    this.child.ref();
    this.child.channel?.ref();
    (this.child.stderr as unknown as { ref(): void }).ref();
  }

  private idle(): void {
    this.child.unref();
    this.child.channel?.unref();
    (this.child.stderr as unknown as { unref(): void }).unref();
  }
}

let worker: ProgramWorker | undefined;

/** Runs the program once; a crashed worker fails its runs with a ProgramError ("Crash") and the next run starts a new one. */
export function runProgram({ stackName, config }: { stackName: string; config: ConfigMap }): Promise<ProgramResult> {
  if (worker === undefined || worker.exited) worker = new ProgramWorker();
  return worker.run(stackName, config);
}
