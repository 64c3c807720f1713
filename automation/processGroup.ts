// The Pulumi CLI that the automation SDK runs, in a process group of its own. A terminal's Ctrl-C goes to the whole
// foreground job ("The INTR (interrupt) character raises a SIGINT signal for all processes in the foreground job
// associated with the terminal", https://www.gnu.org/software/libc/manual/html_node/Signal-Characters.html): a CLI in
// the driver's group died with the first Ctrl-C, leaving the step's `pulumi up` open, and with a second one the
// revert's own `up` failed ("revert did not complete (code: -2)"). Now the driver alone takes the signal and decides.
//
// The SDK has no option for this. Every CLI call of a LocalWorkspace and a Stack goes through its PulumiCommand's `run`
// (node_modules/@pulumi/pulumi/automation/localWorkspace.js `runPulumiCmd`, stack.js `runPulumiCmd`,
// interface/index.js `__run`), which spawns through the module's `exec`:
//     execa_1.default(command, args, { env, cwd })             (automation/cmd.js, in `exec`)
// so no spawn option reaches the child, and the child is whatever `command` names (the stand-in or the real CLI). What
// the SDK does allow is handing LocalWorkspace.create a PulumiCommand of our own (`opts.pulumiCommand`,
// localWorkspace.js constructor). So the command given to every workspace here is the SDK's own, with `run` being the
// SDK's run (cmd.js `PulumiCommand.run` and `exec`, SDK 3.248.0) step for step, through the very execa it uses, plus
// `detached: true`: "the child process will be made the leader of a new process group and session"
// (https://nodejs.org/api/child_process.html#optionsdetached). Everything the CLI starts (the stand-in's curl, the
// real CLI's language host and providers) stays in that group.
//
// A detached child is not killed when the driver exits (execa skips its exit cleanup for `detached`,
// node_modules/execa/lib/kill.js `setExitHandler`): the driver awaits every call, so none is left running unless the
// driver itself was killed, and then a `pulumi up` that finishes is better than one killed half way.
import { PulumiCommand } from "@pulumi/pulumi/automation";
import * as path from "node:path";

type CommandResult = { stdout: string; stderr: string; code: number };
type Run = (args: string[], cwd: string, additionalEnv: Record<string, string>, onOutput?: (out: string) => void, onError?: (err: string) => void, signal?: AbortSignal) => Promise<CommandResult>;
type Execa = (
  file: string,
  args: string[],
  options: { env: Record<string, string>; cwd: string; detached: true },
) => Promise<{ stdout: string; stderr: string; exitCode: number }> & { stdout: NodeJS.ReadableStream | null; stderr: NodeJS.ReadableStream | null; kill(signal: string, options: { forceKillAfterTimeout: false }): void };

const SDK_DIR = path.dirname(require.resolve("@pulumi/pulumi/automation/cmd"));
/* eslint-disable @typescript-eslint/no-require-imports -- the SDK's internals, which its typings leave out */
const { CommandResult } = require("@pulumi/pulumi/automation/cmd") as { CommandResult: new (stdout: string, stderr: string, code: number, err?: unknown) => CommandResult };
const { createCommandError } = require("@pulumi/pulumi/automation/errors") as { createCommandError: (result: CommandResult) => Error };
// The execa the SDK itself resolves, so the child is spawned (and its output read) exactly as the SDK would.
const execa = require(require.resolve("execa", { paths: [SDK_DIR] })) as Execa;
/* eslint-enable @typescript-eslint/no-require-imports */

// The seam must still be there: were `run` gone, the SDK would no longer call ours and the CLI would silently share
// the driver's process group again.
if (typeof (PulumiCommand.prototype as unknown as { run?: unknown }).run !== "function") {
  throw new Error("@pulumi/pulumi's PulumiCommand has no run() any more: automation/processGroup.ts cannot give the Pulumi CLI a process group of its own");
}

/** `cli` with every command it runs for a workspace started in a new process group (and session) of its own. */
export function inOwnProcessGroup(cli: PulumiCommand): PulumiCommand {
  const run: Run = async (args, cwd, additionalEnv, onOutput, onError, signal) => {
    // From here to the end: the SDK's PulumiCommand.run and exec (cmd.js), with `detached: true` added.
    if (!args.includes("--non-interactive")) args.push("--non-interactive");
    const env: Record<string, string> = { ...additionalEnv };
    // The SDK puts the CLI's own folder first on PATH so that it finds its bundled plugins.
    if (path.isAbsolute(cli.command)) env.PATH = path.dirname(cli.command) + path.delimiter + (additionalEnv.PATH || process.env.PATH);
    env.PULUMI_AUTOMATION_API = "true";
    try {
      const proc = execa(cli.command, args, { env, cwd, detached: true });
      if (onError && proc.stderr) proc.stderr.on("data", (data: Buffer) => onError(data.toString()));
      if (onOutput && proc.stdout) proc.stdout.on("data", (data: Buffer) => onOutput(data.toString()));
      signal?.addEventListener("abort", () => proc.kill("SIGINT", { forceKillAfterTimeout: false }));
      const { stdout, stderr, exitCode } = await proc;
      const result = new CommandResult(stdout, stderr, exitCode);
      if (exitCode !== 0) throw createCommandError(result);
      return result;
    } catch (err) {
      // As the SDK does: every failure (execa rejects on a non-zero exit) becomes a CommandError classified from its text.
      throw createCommandError(new CommandResult("", (err as Error).message, -2, err));
    }
  };
  return Object.assign(Object.create(cli) as PulumiCommand, { run });
}
