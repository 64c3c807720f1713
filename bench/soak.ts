// `npm run soak -- --cycles N [--seed S]`: N deploy/rollback cycles on the local cloud, each with a random fault
// (error rate, latency, an `up` failure at a random point, SIGTERM to a deploying CLI, SIGKILL to a deploying CLI
// followed by `bluegreen rollback` once its lease expired, a second operator's deploy or rollback while a rollout bakes,
// `bluegreen abort` while it bakes). After every cycle the invariants are checked; the count of violations and the
// first one in full are printed, and the exit code is 1 when there was any.
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { spawn } from "node:child_process";
import * as path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { otherSlot, SLOTS, type Slot } from "../infra/config";
import { deploy } from "../automation/deploy";
import { RolledBackError } from "../automation/errors";
import { leaseStoreOf, type LeaseView } from "../automation/lease";
import { REPO_ROOT } from "../automation/local/state";
import type { ConfigMap } from "../automation/port";
import { HttpProber, probeMany } from "../automation/prober";
import { manifestKey, readManifest, releasePrefix } from "../automation/releases";
import { chooseRollbackTarget } from "../automation/rollback";
import { ROUTING_PROBE_PATH } from "../automation/rollout";
import { parseConfigMap } from "../automation/stackConfig";
import { RecordingReporter, STACK, startBenchCloud, type BenchCloud } from "./support";
import { mulberry32 } from "./prng";

const BIN = path.join(REPO_ROOT, "bin", "bluegreen.js");
const FAULTS = ["none", "error-rate", "latency", "up-failure", "sigterm", "sigkill", "second-operator", "abort"] as const;
/** A dead deploy's lease expires this long after its last heartbeat (the CLI children and in-process deploys alike). */
const LEASE_SECONDS = "5";
/** Bake per step where another process acts during a bake: long enough that it lands mid-rollout. */
const BAKE_FOR_OTHERS = "2s";
const STEPS = [10, 25, 50, 75, 100];
/** Fresh viewers per invariant check: all must land on the stable slot. */
const VIEWERS = 40;


interface Violation {
  cycle: number;
  fault: string;
  invariant: string;
  detail: string;
}

interface CycleOutcome {
  kind?: (typeof FAULTS)[number];
  fault: string;
  /** What the driver reported: succeeded, rolled-back, exit code of a CLI child, ... */
  outcome: string;
}

interface Cli {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Runs the CLI; once its stderr shows `when` (then after `delayMs`), `signal` is sent to the child and `then` starts
 * another action (a second operator's command), which the returned promise also waits for.
 */
function cli(bench: BenchCloud, args: string[], on?: { when: RegExp; delayMs: number; signal?: NodeJS.Signals; then?: () => Promise<unknown> }): Promise<Cli> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: bench.env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  let armed = on !== undefined;
  let other: Promise<unknown> = Promise.resolve();
  child.stderr.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
    if (armed && on!.when.test(stderr)) {
      armed = false;
      other = new Promise((resolve) =>
        setTimeout(() => {
          if (on!.signal) child.kill(on!.signal);
          resolve(on!.then?.());
        }, on!.delayMs),
      );
    }
  });
  return new Promise<Cli>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stderr }))).then(async (res) => {
    await other;
    return res;
  });
}

async function runCycle(bench: BenchCloud, cycle: number, rand: () => number): Promise<CycleOutcome> {
  const fault = FAULTS[Math.floor(rand() * FAULTS.length)];
  return { ...(await runFault(bench, cycle, rand, fault)), kind: fault };
}

async function runFault(bench: BenchCloud, cycle: number, rand: () => number, fault: (typeof FAULTS)[number]): Promise<CycleOutcome> {
  const release = `soak-${cycle}`;
  const artifact = bench.release(release);
  const stable = (await (await bench.cloud.stack(STACK)).getAllConfig())["picasso-widget:stable"].value as Slot;
  const candidate = otherSlot(stable);
  const step = Math.floor(rand() * STEPS.length);
  const inProcess = async (onStep: (index: number) => void, describe: string): Promise<CycleOutcome> => {
    const reporter = new RecordingReporter((e) => e.kind === "step" && onStep(e.step.index));
    if (step === 0) onStep(-1);
    try {
      const report = await deploy({ stack: STACK, artifact, release, steps: STEPS, bakeMs: 0, json: false, dryRun: false }, reporter);
      return { fault: describe, outcome: report?.result ?? "dry-run" };
    } catch (err) {
      if (err instanceof RolledBackError) return { fault: describe, outcome: "rolled-back" };
      return { fault: describe, outcome: `error: ${(err as Error).message.split("\n")[0]}` };
    }
  };
  switch (fault) {
    case "none":
      return inProcess(() => {}, "none");
    case "error-rate": {
      const errorRate = Math.round((0.05 + 0.95 * rand()) * 100) / 100;
      return inProcess((i) => i === step - 1 && bench.cloud.setFault(STACK, candidate, { errorRate, latencyMs: 0 }), `error rate ${errorRate} on ${candidate} from step ${step + 1}`);
    }
    case "latency": {
      const latencyMs = 50 + Math.floor(rand() * 350);
      return inProcess((i) => i === step - 1 && bench.cloud.setFault(STACK, candidate, { errorRate: 0, latencyMs }), `latency ${latencyMs} ms on ${candidate} from step ${step + 1}`);
    }
    case "up-failure": {
      // Ups of a deploy: the staging one, then one per step; skip = 0 fails staging.
      const skip = Math.floor(rand() * (STEPS.length + 1));
      bench.cloud.failUps(STACK, { skip, fail: 1 });
      return inProcess(() => {}, `up failure after ${skip} successful ups`);
    }
    case "sigterm":
    case "sigkill": {
      const signal = fault === "sigterm" ? "SIGTERM" : "SIGKILL";
      // Once the journal exists (the staging message follows it), at a random moment of the rollout.
      const delayMs = Math.floor(rand() * 4000);
      const run = await cli(bench, ["deploy", "--stack", STACK, "--artifact", artifact, "--release", release, "--steps", STEPS.join(","), "--bake", "0s"], { when: /staging release/, delayMs, signal });
      const describe = `${signal} ${delayMs} ms after staging began`;
      const outcome = `deploy exit ${run.code ?? run.signal}`;
      if (signal === "SIGTERM") return { fault: describe, outcome: run.code === 1 || run.code === 0 ? outcome : `${outcome}: ${lastLine(run.stderr)}` };
      if ((await leaseOf(bench)).state === "free") return { fault: describe, outcome: `${outcome} (finished before the kill)` };
      // Any machine may finish it once the dead deploy's lease has expired (no heartbeat renews it).
      for (let i = 0; i < 100 && (await leaseOf(bench)).state === "live"; i++) await new Promise((r) => setTimeout(r, 100));
      const rb = await cli(bench, ["rollback", "--stack", STACK]);
      return { fault: describe, outcome: `${outcome}; rollback exit ${rb.code ?? rb.signal}${rb.code === 0 ? "" : `: ${lastLine(rb.stderr)}`}` };
    }
    case "second-operator":
    case "abort": {
      // During the bake of a random step but the last (so the rollout is surely still running when the other acts).
      const at = Math.floor(rand() * (STEPS.length - 1));
      const when = new RegExp(`${candidate} at ${STEPS[at]}%: .*baking`);
      const second = fault === "abort" ? ["abort", "--stack", STACK] : rand() < 0.5 ? ["rollback", "--stack", STACK] : ["deploy", "--stack", STACK, "--artifact", bench.release(`${release}-other`), "--release", `${release}-other`, "--steps", STEPS.join(","), "--bake", "0s"];
      let other: Cli | undefined;
      const run = await cli(bench, ["deploy", "--stack", STACK, "--artifact", artifact, "--release", release, "--steps", STEPS.join(","), "--bake", BAKE_FOR_OTHERS], {
        when,
        delayMs: Math.floor(rand() * 1000),
        then: async () => (other = await cli(bench, second)),
      });
      const describe = `${fault === "abort" ? "abort" : `a second operator's ${second[0]}`} during the ${STEPS[at]} percent bake`;
      // Expected: the deploy reverts (1) and abort says so (0), or, when the abort reached it after its last check (a
      // loaded machine starts the CLI slowly), the deploy completes (0) and abort says so (3); a second operator is
      // refused (2) and the deploy completes (0).
      const expected = fault === "abort" ? [{ deploy: 1, other: 0 }, { deploy: 0, other: 3 }] : [{ deploy: 0, other: 2 }];
      const outcome = `deploy exit ${run.code ?? run.signal}, ${second[0]} exit ${other?.code ?? other?.signal ?? "(never ran)"}`;
      const off = !expected.some((e) => run.code === e.deploy && other?.code === e.other);
      return { fault: describe, outcome: off ? `UNEXPECTED ${outcome}: ${lastLine(other?.stderr ?? "")} / ${lastLine(run.stderr)}` : outcome };
    }
  }
}

/** The stack's lease, as every machine sees it. */
async function leaseOf(bench: BenchCloud): Promise<LeaseView> {
  const store = await leaseStoreOf({ stack: await bench.cloud.stack(STACK), s3: bench.cloud.s3 });
  return store ? store.view() : { state: "free" };
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

function withoutRevision(config: ConfigMap): ConfigMap {
  const rest = { ...config };
  delete rest["picasso-widget:revision"];
  return rest;
}

/** JSON with object keys sorted, so that {"blue":0,"green":100} and {"green":100,"blue":0} compare equal. */
function canonical(text: string): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sort) : v !== null && typeof v === "object" ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => [k, sort(x)])) : v;
  try {
    return JSON.stringify(sort(JSON.parse(text)));
  } catch {
    return text;
  }
}

/** Same keys, values (JSON compared by content) and secret flags. */
function same(a: ConfigMap, b: ConfigMap): boolean {
  const keys = Object.keys(a).sort();
  return keys.join() === Object.keys(b).sort().join() && keys.every((k) => canonical(a[k].value) === canonical(b[k].value) && Boolean(a[k].secret) === Boolean(b[k].secret));
}

async function checkInvariants(bench: BenchCloud, pre: ConfigMap, release: string): Promise<{ invariant: string; detail: string }[]> {
  const problems: { invariant: string; detail: string }[] = [];
  const stack = await bench.cloud.stack(STACK);
  const map = await stack.getAllConfig();
  let config;
  try {
    config = parseConfigMap(map, STACK).config;
  } catch (err) {
    return [{ invariant: "stack config is valid", detail: (err as Error).message }];
  }
  const lease = await leaseOf(bench);
  const journal = lease.state === "free" ? undefined : lease.journal;
  if (lease.state !== "free") problems.push({ invariant: "no rollout in flight after a cycle", detail: `lease ${lease.state}, journal ${JSON.stringify(journal?.phase)}, holder ${lease.holder.command}` });

  if (!SLOTS.includes(config.stable)) problems.push({ invariant: "exactly one stable slot", detail: `stable = ${config.stable}` });
  if (config.weights.blue + config.weights.green !== 100) problems.push({ invariant: "weights sum to 100", detail: JSON.stringify(config.weights) });
  if (!journal && config.weights[config.stable] !== 100) problems.push({ invariant: "the stable slot has 100 when no rollout is in flight", detail: JSON.stringify(config.weights) });

  // The config is the pre-rollout snapshot, or the completed rollout's: the candidate stable at 100 with the release.
  // A restore (a revert, a rollback) brings the snapshot back under a raised routing revision, never a lower one.
  const preConfig = parseConfigMap(pre, STACK).config;
  const candidate = otherSlot(preConfig.stable);
  const completed: ConfigMap = {
    ...pre,
    "picasso-widget:slots": { value: JSON.stringify({ ...preConfig.slots, [candidate]: { release } }), secret: false },
    "picasso-widget:stable": { value: candidate, secret: false },
    "picasso-widget:weights": { value: JSON.stringify({ [preConfig.stable]: 0, [candidate]: 100 }), secret: false },
  };
  const isPre = same(withoutRevision(map), withoutRevision(pre)) && config.revision >= preConfig.revision;
  const isCompleted = same(withoutRevision(map), withoutRevision(completed)) && config.revision > preConfig.revision;
  if (!isPre && !isCompleted) problems.push({ invariant: "config is the pre-rollout snapshot or the completed rollout's", detail: `now ${JSON.stringify(map)}; before ${JSON.stringify(pre)}` });

  // What the last successful update applied is what the config says (a later `up` changes nothing).
  const history = await stack.history();
  const lastOk = history.find((u) => u.kind === "update" && u.result === "succeeded");
  if (!lastOk || !same(lastOk.config, map)) problems.push({ invariant: "the last successful update applied the current config", detail: `update ${lastOk?.version}: ${JSON.stringify(lastOk?.config)}` });

  // The edge: the routing revision of the config, every fresh viewer on the stable slot and release, the other slot's
  // release through the preview route.
  const prober = new HttpProber({ url: bench.cloud.url, host: bench.cloud.host(STACK) });
  try {
    const routing = await prober.probe({ path: ROUTING_PROBE_PATH });
    const rev = routing.status === 200 ? (JSON.parse(routing.body.toString("utf8")) as { rev?: number }).rev : undefined;
    if (rev !== config.revision) problems.push({ invariant: "the edge reads the config's routing revision", detail: `edge ${routing.status} rev ${rev}, config ${config.revision}` });
    const expected = config.slots[config.stable].release;
    const viewers = await probeMany(prober, Array.from({ length: VIEWERS }, () => ({ path: "/version.json" })), { concurrency: 8, spreadMs: 0, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) });
    const off = viewers.filter((v) => v.status !== 200 || v.slot !== config.stable || v.release !== expected);
    if (off.length > 0) problems.push({ invariant: "the edge serves the stable slot to every viewer", detail: `${off.length}/${VIEWERS} off, e.g. ${off[0].status} ${off[0].slot}/${off[0].release}; expected ${config.stable}/${expected}` });
    const idle = otherSlot(config.stable);
    const idleRelease = config.slots[idle].release;
    if (idleRelease && parseConfigMap(map, STACK).previewToken) {
      const res = await prober.probe({ path: "/version.json", preview: { token: parseConfigMap(map, STACK).previewToken!, slot: idle } });
      if (res.status !== 200 || res.release !== idleRelease) problems.push({ invariant: "the idle slot serves its release through the preview route", detail: `${res.status} ${res.slot}/${res.release}; expected ${idle}/${idleRelease}` });
    }
  } finally {
    prober.close();
  }

  // Releases referenced by the config and by the update `bluegreen rollback` would restore are whole in S3.
  const buckets = (await stack.outputs()).bucketNames.value as Record<Slot, string>;
  const referenced: ConfigMap[] = [map];
  try {
    referenced.push(chooseRollbackTarget(history, STACK).config);
  } catch {
    // No earlier release to roll back to (the first cycles): nothing more is referenced.
  }
  for (const m of referenced) {
    const c = parseConfigMap(m, STACK).config;
    for (const slot of SLOTS) {
      const r = c.slots[slot].release;
      if (!r) continue;
      const manifest = await readManifest(bench.cloud.s3, buckets[slot], r);
      if (!manifest) {
        problems.push({ invariant: "no referenced release missing from S3", detail: `${buckets[slot]}/${manifestKey(r)} is missing` });
        continue;
      }
      for (const file of Object.keys(manifest.files)) {
        const key = releasePrefix(slot, r) + file;
        try {
          await bench.cloud.s3.send(new HeadObjectCommand({ Bucket: buckets[slot], Key: key }));
        } catch {
          problems.push({ invariant: "no referenced release missing from S3", detail: `${buckets[slot]}/${key} is missing` });
        }
      }
    }
  }
  return problems;
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option("cycles", { type: "number", default: 20, describe: "deploy/rollback cycles" })
    .option("seed", { type: "number", describe: "seed of the fault choices (random when omitted)" })
    .strict()
    .parse();
  const seed = argv.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rand = mulberry32(seed);
  console.log(`soak: ${argv.cycles} cycles, seed ${seed} (rerun with --seed ${seed})`);
  const started = Date.now();
  process.env.BLUEGREEN_LEASE_SECONDS = LEASE_SECONDS;
  const bench = await startBenchCloud("soak");
  const violations: Violation[] = [];
  const tally = new Map<string, number>();
  try {
    const boot = "soak-0";
    await deploy({ stack: STACK, artifact: bench.release(boot), release: boot, bakeMs: 0, json: false, dryRun: false }, new RecordingReporter());
    await bench.tuneRollout({ bakeSeconds: 0, probesPerStep: 20, minSamples: 5 });
    for (let cycle = 1; cycle <= argv.cycles; cycle++) {
      const pre = await (await bench.cloud.stack(STACK)).getAllConfig();
      const t = Date.now();
      const { kind, fault, outcome } = await runCycle(bench, cycle, rand);
      bench.cloud.clearFaults(STACK);
      const problems = await checkInvariants(bench, pre, `soak-${cycle}`);
      // A second operator must be refused and an abort obeyed: anything else is a violation too.
      if (outcome.startsWith("UNEXPECTED")) problems.push({ invariant: "a second operator is refused (exit 2); an abort reverts the rollout (exit 1), or says it came too late (exit 3)", detail: outcome });
      for (const p of problems) violations.push({ cycle, fault, ...p });
      tally.set(kind!, (tally.get(kind!) ?? 0) + 1);
      console.log(`cycle ${String(cycle).padStart(3)}: ${fault} -> ${outcome} (${((Date.now() - t) / 1000).toFixed(1)} s)${problems.length ? `  VIOLATIONS: ${problems.map((p) => p.invariant).join("; ")}` : ""}`);
    }
  } finally {
    await bench.close();
  }
  console.log(`\nsoak: ${argv.cycles} cycles in ${((Date.now() - started) / 1000).toFixed(0)} s, seed ${seed}; faults ${[...tally].map(([k, n]) => `${k} ${n}`).join(", ")}`);
  console.log(`violations: ${violations.length}`);
  if (violations.length > 0) {
    console.log(`first violation:\n${JSON.stringify(violations[0], null, 2)}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
