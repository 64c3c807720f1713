// `bluegreen local up|fault|reset` and `bluegreen demo` (what `npm start` runs). The yargs layer only parses and
// validates; the work is in cloud.ts and, for the demo, in the short sequence below.
import { rmSync } from "node:fs";
import { Agent, request } from "node:http";
import * as path from "node:path";
import type { Argv, CommandModule } from "yargs";
import { SLOTS, decodeConfigValue, type Slot } from "../../infra/config";
import { UsageError } from "../errors";
import { buildManifest, uploadRelease } from "../releases";
import { runningCloud, startLocalCloud, type LocalCloud } from "./cloud";
import { FaultStore, MAX_LATENCY_MS, slotFaultProblem } from "./faults";
import { DEFAULT_STATE_DIR, REPO_ROOT, localStackProblem } from "./state";

const localUp: CommandModule<object, { port: number }> = {
  command: "up",
  describe: "run the local cloud (S3, edge, engine) in the foreground until interrupted",
  builder: (y) => y.option("port", { type: "number", default: 8080, describe: "edge port on 127.0.0.1 (0: any free port)" }),
  handler: async ({ port }) => {
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port = ${port}: expected an integer from 0 to 65535`);
    const cloud = await startLocalCloud({ port, advertise: true });
    process.stdout.write(`local cloud: edge ${cloud.url} (send Host: ${cloud.host("local")}, e.g. curl -H 'Host: ${cloud.host("local")}' ${cloud.url}/)\n`);
    process.stdout.write(`local cloud: S3 ${cloud.s3Endpoint}; state in ${path.relative(REPO_ROOT, cloud.stateDir)}; Ctrl-C stops\n`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await cloud.close();
  },
};

interface FaultArgs {
  stack: string;
  slot?: string;
  "error-rate": number;
  "latency-ms": number;
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
      .option("clear", { type: "boolean", default: false, describe: "remove the stack's faults" }) as unknown as Argv<FaultArgs>,
  handler: async (args) => {
    const stackProblem = localStackProblem(args.stack);
    if (stackProblem !== undefined) throw new UsageError(`--stack = ${JSON.stringify(args.stack)}: expected ${stackProblem}`);
    if (!args.clear) {
      if (args.slot === undefined) throw new UsageError("--slot = (missing): expected blue or green (or --clear)");
      const problem = slotFaultProblem(args.slot, { errorRate: args["error-rate"], latencyMs: args["latency-ms"] });
      if (problem !== undefined) throw new UsageError(`--${problem}`);
    }
    // Faults live in the state folder, which a running `local up` re-reads: nothing needs to be started here.
    const faults = new FaultStore(DEFAULT_STATE_DIR);
    if (args.clear) faults.clear(args.stack);
    else faults.setSlotFault(args.stack, args.slot as Slot, { errorRate: args["error-rate"], latencyMs: args["latency-ms"] });
    process.stdout.write(args.clear ? `faults cleared on ${args.stack}\n` : `${args.stack}/${args.slot}: error rate ${args["error-rate"]}, latency ${args["latency-ms"]} ms\n`);
  },
};

const localReset: CommandModule = {
  command: "reset",
  describe: "delete the local cloud's state (buckets, stacks, history, faults)",
  handler: async () => {
    const running = await runningCloud(DEFAULT_STATE_DIR);
    if (running !== undefined) throw new UsageError(`local cloud = running (pid ${running.pid}): expected it stopped; stop \`bluegreen local up\` first`);
    rmSync(DEFAULT_STATE_DIR, { recursive: true, force: true });
    process.stdout.write(`removed ${path.relative(REPO_ROOT, DEFAULT_STATE_DIR)}\n`);
  },
};

const localCommand: CommandModule = {
  command: "local <command>",
  describe: "the local cloud: S3, an edge running the real router code, an emulated engine",
  builder: (y) => y.command(localUp).command(localFault).command(localReset).demandCommand(1),
  handler: () => {},
};

// ---- The demo (interim: the driver's `deploy` replaces the sequence below) ----

const DEMO_STACK = "local";
const WIDGET = path.join(REPO_ROOT, "examples", "widget", "releases");
const DEMO_STEPS = [10, 25, 50, 75, 100];
const PROBES_PER_STEP = 400;
const TOLERANCE_POINTS = 8;

const demoCommand: CommandModule = {
  command: "demo",
  describe: "start the local cloud, deploy examples/widget 1.0.0 on blue, then shift to 2.0.0 on green step by step",
  handler: async () => {
    const started = Date.now();
    const cloud = await startLocalCloud();
    try {
      await demo(cloud);
    } finally {
      await cloud.close();
    }
    process.stdout.write(`done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  },
};

async function demo(cloud: LocalCloud): Promise<void> {
  const stack = cloud.stack(DEMO_STACK);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`local cloud: edge ${cloud.url}, stack ${DEMO_STACK} (Host: ${cloud.host(DEMO_STACK)})`);
  // Raise the routing revision on every change, as the driver does; start above whatever is deployed.
  let revision = Number(decodeConfigValue((await stack.getAllConfig())["picasso-widget:revision"]?.value ?? "0"));
  const deploy = async (values: Record<string, unknown>, message: string) => {
    revision += 1;
    const config = Object.fromEntries(Object.entries({ ...values, revision }).map(([k, v]) => [`picasso-widget:${k}`, { value: JSON.stringify(v), secret: false }]));
    await stack.setAllConfig(config);
    await stack.up({ message });
  };

  // The first up creates the buckets, whose names are outputs.
  await stack.up({ message: "demo: create the slots" });
  const buckets = (await stack.outputs()).bucketNames.value as Record<Slot, string>;
  for (const [slot, release] of [["blue", "1.0.0"], ["green", "2.0.0"]] as const) {
    const { manifest, bodies } = await buildManifest(path.join(WIDGET, release), release);
    const uploaded = await uploadRelease(cloud.s3, { bucket: buckets[slot], slot }, manifest, bodies);
    out(`uploaded ${release} to ${slot} (${uploaded.uploaded} files, ${uploaded.skipped} already there)`);
  }
  const slots = { blue: { release: "1.0.0" }, green: { release: "2.0.0" } };
  await deploy({ slots, stable: "blue", weights: { blue: 100, green: 0 } }, "demo: 1.0.0 on blue");
  out(`1.0.0 on blue at 100%; 2.0.0 staged on green: observed green ${percent(await observedGreenShare(cloud))}`);

  const rows: string[] = [];
  for (const [i, weight] of DEMO_STEPS.entries()) {
    await deploy({ slots, stable: weight === 100 ? "green" : "blue", weights: { blue: 100 - weight, green: weight } }, `demo: green at ${weight}%`);
    const share = await observedGreenShare(cloud);
    const line = `step ${i + 1}/${DEMO_STEPS.length}: green configured ${weight}%, observed ${percent(share)} of ${PROBES_PER_STEP} fresh viewers`;
    out(line);
    rows.push(line);
    if (Math.abs(share * 100 - weight) > TOLERANCE_POINTS) throw new Error(`${line}: more than ${TOLERANCE_POINTS} points off`);
  }
  out(`summary: 2.0.0 on green is stable at 100% after ${DEMO_STEPS.length} steps; blue keeps 1.0.0 as the rollback target`);
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** Share of fresh viewers (no cookie) the edge sends to green, over real HTTP requests. */
async function observedGreenShare(cloud: LocalCloud): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const url = new URL("/version.json", cloud.url);
  let green = 0;
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, agent, headers: { host: cloud.host(DEMO_STACK) } }, (res) => {
        if (res.headers["x-bluegreen-slot"] === "green") green++;
        res.resume().on("end", resolve);
      });
      req.on("error", reject).end();
    });
  try {
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next++ < PROBES_PER_STEP) await one();
    }));
  } finally {
    agent.destroy();
  }
  return green / PROBES_PER_STEP;
}

export const localCommands: CommandModule[] = [localCommand, demoCommand as CommandModule];
