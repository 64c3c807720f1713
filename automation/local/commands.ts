// `bluegreen local up|fault|reset` and `bluegreen demo` (what `npm start` runs). The yargs layer only parses and
// validates; the work is in cloud.ts and, for the demo, in the driver.
import { existsSync, rmSync } from "node:fs";
import * as path from "node:path";
import type { Argv, CommandModule } from "yargs";
import { SLOTS, type Slot } from "../../infra/config";
import { UsageError } from "../errors";
import { deploy } from "../deploy";
import { Reporter } from "../output";
import { LOCAL_CLOUD_MARKER, runningCloud, startLocalCloud } from "./cloud";
import { FaultStore, MAX_LATENCY_MS, slotFaultProblem } from "./faults";
import { localStateDir, REPO_ROOT, stackNameProblem, stackDir } from "./state";

const localUp: CommandModule<object, { port: number }> = {
  command: "up",
  describe: "run the local cloud (S3, edge, engine) in the foreground until interrupted",
  builder: (y) => y.option("port", { type: "number", default: 8080, describe: "edge port on 127.0.0.1 (0: any free port)" }),
  handler: async ({ port }) => {
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port = ${port}: expected an integer from 0 to 65535`);
    const cloud = await startLocalCloud({ port, advertise: true });
    process.stdout.write(`local cloud: edge ${cloud.url} (send Host: ${cloud.host("local")}, e.g. curl -H 'Host: ${cloud.host("local")}' ${cloud.url}/)\n`);
    process.stdout.write(`local cloud: S3 ${cloud.s3Endpoint}; state in ${path.relative(REPO_ROOT, cloud.stateDir)}; Ctrl-C stops\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await cloud.close();
    // Said, so that whoever stopped it knows the edge and S3 are gone and the state is kept for the next `local up`.
    process.stdout.write(`local cloud: stopped on ${signal}; state kept in ${path.relative(REPO_ROOT, cloud.stateDir)}\n`);
  },
};

interface FaultArgs {
  stack: string;
  slot?: string;
  "error-rate": number;
  "latency-ms": number;
  "drop-rate"?: number;
  clear: boolean;
}

const localFault: CommandModule<object, FaultArgs> = {
  command: "fault",
  describe: "inject faults on a slot of the local cloud (or --clear them); a running `local up` obeys at once",
  builder: (y: Argv) =>
    y
      .option("stack", { type: "string", default: "local" })
      .option("slot", { type: "string", describe: SLOTS.join("|") })
      .option("error-rate", { type: "number", default: 0, describe: "share of the slot's requests answered 503 (0..1)" })
      .option("latency-ms", { type: "number", default: 0, describe: `delay added to each of the slot's requests (0..${MAX_LATENCY_MS})` })
      .option("drop-rate", { type: "number", describe: "share of the stack's connections reset with no response, on either slot (0..1)" })
      .option("clear", { type: "boolean", default: false, describe: "remove the stack's faults" }) as unknown as Argv<FaultArgs>,
  handler: async (args) => {
    const stackProblem = stackNameProblem(args.stack);
    if (stackProblem !== undefined) throw new UsageError(`--stack = ${JSON.stringify(args.stack)}: expected ${stackProblem}`);
    const drop = args["drop-rate"];
    if (!args.clear) {
      if (drop !== undefined && (!Number.isFinite(drop) || drop < 0 || drop > 1)) throw new UsageError(`--drop-rate = ${drop}: expected a number from 0 to 1`);
      if (args.slot === undefined && drop === undefined) throw new UsageError("--slot = (missing): expected blue or green (or --drop-rate, or --clear)");
      const problem = args.slot === undefined ? undefined : slotFaultProblem(args.slot, { errorRate: args["error-rate"], latencyMs: args["latency-ms"] });
      if (problem !== undefined) throw new UsageError(`--${problem}`);
    }
    // Faults live in the state folder, which a running `local up` re-reads: nothing needs to be started here.
    const faults = new FaultStore(localStateDir());
    if (args.clear) faults.clear(args.stack);
    else {
      if (args.slot !== undefined) faults.setSlotFault(args.stack, args.slot as Slot, { errorRate: args["error-rate"], latencyMs: args["latency-ms"] });
      if (drop !== undefined) faults.setDropRate(args.stack, drop);
    }
    process.stdout.write(args.clear ? `faults cleared on ${args.stack}\n` : `${args.stack}: ${faults.describe(args.stack) ?? "no faults"}\n`);
  },
};

const localReset: CommandModule = {
  command: "reset",
  describe: "delete the local cloud's state (buckets, stacks, history, faults)",
  handler: async () => {
    const stateDir = localStateDir();
    if (!existsSync(stateDir)) {
      process.stdout.write(`nothing to remove: ${stateDir} does not exist\n`);
      return;
    }
    // BLUEGREEN_STATE_DIR may name any folder; once it named one holding someone's notes, and reset deleted them.
    if (!existsSync(path.join(stateDir, LOCAL_CLOUD_MARKER))) {
      throw new UsageError(`state folder = ${stateDir}: expected a folder the local cloud made (it holds no ${LOCAL_CLOUD_MARKER}); nothing removed (a local cloud folder from before the marker: remove it by hand)`);
    }
    const running = await runningCloud(stateDir);
    if (running !== undefined) throw new UsageError(`local cloud = running (pid ${running.pid}): expected it stopped; stop \`bluegreen local up\` first`);
    rmSync(stateDir, { recursive: true, force: true });
    process.stdout.write(`removed ${path.relative(REPO_ROOT, stateDir)}\n`);
  },
};

const localCommand: CommandModule = {
  command: "local <command>",
  describe: "the local cloud: S3, an edge running the real router code, an emulated engine",
  builder: (y) => y.command(localUp).command(localFault).command(localReset).demandCommand(1),
  handler: () => {},
};

// ---- The demo: what `npm start` runs, with the real driver ----

/** The demo's own stack, reset at every run so `npm start` always shows the same story. */
const DEMO_STACK = "local-demo";
const WIDGET = path.join(REPO_ROOT, "examples", "widget", "releases");

const demoCommand: CommandModule = {
  command: "demo",
  describe: "start the local cloud, deploy examples/widget 1.0.0 on blue, then shift to 2.0.0 on green step by step",
  handler: async () => {
    const started = Date.now();
    const cloud = await startLocalCloud();
    try {
      rmSync(stackDir(cloud.stateDir, DEMO_STACK), { recursive: true, force: true });
      rmSync(path.join(cloud.workDir, "stacks", `Pulumi.${DEMO_STACK}.yaml`), { force: true });
      const out = (line: string) => process.stdout.write(`${line}\n`);
      out(`local cloud: edge ${cloud.url}, stack ${DEMO_STACK} (Host: ${cloud.host(DEMO_STACK)})`);
      const reporter = new Reporter({ json: false });
      for (const release of ["1.0.0", "2.0.0"]) {
        await deploy({ stack: DEMO_STACK, artifact: path.join(WIDGET, release), release, json: false, dryRun: false }, reporter, { cloud });
      }
      out(`summary: 2.0.0 on green is stable at 100% after 5 steps; blue keeps 1.0.0 as the instant rollback target (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      out(`try: npx bluegreen status --stack ${DEMO_STACK}; npx bluegreen rollback --stack ${DEMO_STACK}`);
    } finally {
      await cloud.close();
    }
  },
};

export const localCommands: CommandModule[] = [localCommand, demoCommand as CommandModule];
