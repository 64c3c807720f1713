// yargs command modules for the driver. This layer only parses argv and maps it to typed options.
import type { Argv, CommandModule } from "yargs";
import type { Slot } from "../../infra/config";
import { abort } from "../abort";
import { deploy, parseDuration, parseSteps } from "../deploy";
import { exitCodeOf, EXIT, UsageError } from "../errors";
import { history, status, verify } from "../inspect";
import { open } from "../open";
import { Reporter } from "../output";
import { promote } from "../promote";
import { rollback } from "../rollback";

const stackOption = { type: "string", demandOption: true, describe: "stack name (dev, staging, production, local, local-<name>)" } as const;
const jsonOption = { type: "boolean", default: false, describe: "print one JSON report on stdout" } as const;

/**
 * Runs a command with its Reporter and writes the job summary whatever the outcome, with the exit code the CLI will
 * return (an input the handler itself rejects included). Queries (status, history, open) write none: workflows poll
 * them in loops (deploy.yml waits on `status` before it finishes a revert), and a summary per poll would bury the
 * rollout's own.
 */
async function reported(command: string, a: { json: boolean; stack?: string }, run: (reporter: Reporter) => Promise<unknown>, summary = true): Promise<void> {
  const reporter = new Reporter({ json: a.json, command });
  if (a.stack !== undefined) reporter.summary.note({ stack: a.stack });
  try {
    await run(reporter);
  } catch (err) {
    reporter.close(exitCodeOf(err), err, { summary });
    throw err;
  }
  reporter.close(EXIT.ok, undefined, { summary });
}

interface Common {
  stack: string;
  json: boolean;
}

const deployCommand: CommandModule<object, Common & { artifact: string; release: string; steps?: string; bake?: string; "dry-run": boolean }> = {
  command: "deploy",
  describe: "ship a release to the idle slot and shift traffic to it step by step",
  builder: (y: Argv) =>
    y
      .option("stack", stackOption)
      .option("artifact", { type: "string", demandOption: true, describe: "folder holding the release (index.html at its top)" })
      .option("release", { type: "string", demandOption: true, describe: "immutable release id" })
      // nargs 1: a value such as `-5s` is this flag's value (then rejected by name) rather than short flags -5 -s.
      .option("steps", { type: "string", nargs: 1, describe: "percent per step, e.g. 10,25,50,75,100 (default: the stack's)" })
      .option("bake", { type: "string", nargs: 1, describe: "probe time per step, e.g. 60s (default: the stack's)" })
      .option("json", jsonOption)
      .option("dry-run", { type: "boolean", default: false, describe: "print the plan; change nothing" }) as never,
  handler: (a) =>
    reported("deploy", a, (reporter) =>
      deploy({ stack: a.stack, artifact: a.artifact, release: a.release, steps: parseSteps(a.steps), bakeMs: parseDuration("--bake", a.bake), json: a.json, dryRun: a["dry-run"] }, reporter),
    ),
};

const rollbackCommand: CommandModule<object, Common & { to?: string; now: boolean }> = {
  command: "rollback",
  describe: "restore an earlier successful update's config from the stack's history (or finish an interrupted rollout)",
  builder: (y: Argv) =>
    y
      .option("stack", stackOption)
      // A string, parsed here: yargs turns `--to abc` into NaN, which would reach the message as "--to = NaN". nargs 1
      // keeps `--to -1` this flag's value (then rejected by name) rather than a short flag -1.
      .option("to", { type: "string", nargs: 1, describe: "update version to restore (see bluegreen history)" })
      .option("now", { type: "boolean", default: false, describe: "emergency: the last stable routing in one update, no S3 read-back, no viewer verification" })
      .option("json", jsonOption) as never,
  handler: (a) => reported("rollback", a, (reporter) => rollback({ stack: a.stack, to: parseUpdateVersion("--to", a.to), now: a.now }, reporter)),
};

/** An update version as `pulumi stack history` numbers them: 1, 2, 3, ... */
function parseUpdateVersion(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\s*[1-9]\d*\s*$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${flag} = ${JSON.stringify(text)}: expected a positive integer update version (bluegreen history lists them)`);
  }
  return Number(text);
}

const verifyCommand: CommandModule<object, Common & { slot?: Slot }> = {
  command: "verify",
  describe: "check that the stable slot takes all viewers, or that --slot passes its checks through the preview route",
  builder: (y: Argv) => y.option("stack", stackOption).option("slot", { choices: ["blue", "green"] as const }).option("json", jsonOption) as never,
  handler: (a) => reported("verify", a, (reporter) => verify({ stack: a.stack, slot: a.slot }, reporter)),
};

const statusCommand: CommandModule<object, Common & { watch: boolean }> = {
  command: "status",
  describe: "show the stable slot, releases, weights and any rollout in flight (on any machine)",
  builder: (y: Argv) =>
    y
      .option("stack", stackOption)
      .option("watch", { type: "boolean", default: false, describe: "follow the rollout in progress (step, weight, last verdict, bake left) until it ends" })
      .option("json", jsonOption) as never,
  handler: (a) => reported("status", a, (reporter) => status(a.stack, reporter, { watch: a.watch }), false),
};

const abortCommand: CommandModule<object, Common> = {
  command: "abort",
  describe: "make the rollout in progress on the stack (run from any machine) revert and exit 1",
  builder: (y: Argv) => y.option("stack", stackOption).option("json", jsonOption) as never,
  handler: (a) => reported("abort", a, (reporter) => abort(a.stack, reporter)),
};

const historyCommand: CommandModule<object, Common> = {
  command: "history",
  describe: "show the stack's update history and audit log",
  builder: (y: Argv) => y.option("stack", stackOption).option("json", jsonOption) as never,
  handler: (a) => reported("history", a, (reporter) => history(a.stack, reporter), false),
};

const promoteCommand: CommandModule<object, { from: string; to: string; approve?: string[]; json: boolean }> = {
  command: "promote",
  describe: "ship the release another stack serves to every viewer into this stack's idle slot, after its approval gate",
  builder: (y: Argv) =>
    y
      .option("from", { type: "string", demandOption: true, describe: "source stack: the release its stable slot serves is promoted" })
      .option("to", { type: "string", demandOption: true, describe: "target stack: gets the release through its own rollout" })
      .option("approve", { type: "string", array: true, describe: "role=login approval, repeatable (local stacks only; others read GitHub)" })
      .option("json", jsonOption) as never,
  handler: (a) => reported("promote", a, (reporter) => promote({ from: a.from, to: a.to, approve: a.approve ?? [] }, reporter)),
};

const openCommand: CommandModule<object, Common & { slot?: Slot; browser: boolean }> = {
  command: "open",
  describe: "print the viewer URL, or with --slot that slot's release-qualified URL (the idle slot too); --browser opens it",
  builder: (y: Argv) =>
    y
      .option("stack", stackOption)
      .option("slot", { choices: ["blue", "green"] as const, describe: "the slot to see, whatever the weights (no token needed)" })
      .option("browser", { type: "boolean", default: false, describe: "open it with $BROWSER, else the system's opener" })
      .option("json", jsonOption) as never,
  handler: (a) => reported("open", a, (reporter) => open({ stack: a.stack, slot: a.slot, browser: a.browser, json: a.json }, reporter), false),
};

export const driverCommands = [deployCommand, promoteCommand, rollbackCommand, abortCommand, verifyCommand, statusCommand, historyCommand, openCommand] as CommandModule[];
