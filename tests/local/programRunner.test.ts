// The engine's program runner keeps one worker process for many runs: every run must still be the real program,
// evaluated afresh for its own config, unharmed by a run that failed before it, and a crashed worker must fail
// its run plainly and be replaced.
import { expect } from "chai";
import { servedOnKvsFailure } from "../infra/fallback";
import { execFileSync, spawn } from "node:child_process";
import * as path from "node:path";
import { ProgramError, runProgram, type ProgramResult } from "../../automation/local/program";
import { REPO_ROOT } from "../../automation/local/state";
import { localStackConfig } from "./support";
import type { ConfigMap } from "../../automation/port";
import { decodeRoutingRecord, type RoutingRecord } from "../../infra/routing";

const json = (value: unknown) => ({ value: JSON.stringify(value), secret: false });

/** The local stack file's config with a rollout in progress: `candidate` has `weight` percent. */
function midRollout(stable: "blue" | "green", weight: number, revision: number): ConfigMap {
  const candidate = stable === "blue" ? "green" : "blue";
  return {
    ...localStackConfig(),
    "picasso-widget:slots": json({ [stable]: { release: `${stable}-r${revision}` }, [candidate]: { release: `${candidate}-r${revision + 1}` } }),
    "picasso-widget:stable": { value: stable, secret: false },
    "picasso-widget:weights": json({ [stable]: 100 - weight, [candidate]: weight }),
    "picasso-widget:revision": json(revision),
  };
}

function routingRecord(result: ProgramResult): RoutingRecord | undefined {
  const key = result.resources.filter((r) => r.type === "aws:cloudfront/keyvaluestoreKey:KeyvaluestoreKey");
  expect(key).to.have.length(1);
  return decodeRoutingRecord(String(key[0].inputs.value));
}

/** The slot and release baked into the viewer-request function as its KVS-failure fallback. */
function fallback(result: ProgramResult): Promise<string> {
  const fn = result.resources.find((r) => r.type === "aws:cloudfront/function:Function" && r.name === "router-viewer-request");
  return servedOnKvsFailure(String(fn?.inputs.code));
}

/** The runner's worker: this process's child running programWorker.ts. */
function workerPids(): number[] {
  try {
    return execFileSync("pgrep", ["-P", String(process.pid), "-f", "programWorker"], { encoding: "utf8" }).trim().split("\n").map(Number);
  } catch {
    return [];
  }
}

describe("local engine: the program runner's worker", function () {
  it("evaluates the program afresh for each run's stack and config", async () => {
    const a = await runProgram({ stackName: "local", config: midRollout("blue", 10, 3) });
    const b = await runProgram({ stackName: "local-b", config: { ...midRollout("green", 75, 8), "picasso-widget:environment": { value: "local", secret: false } } });
    const again = await runProgram({ stackName: "local", config: midRollout("blue", 10, 3) });

    expect(routingRecord(a)).to.include({ rev: 3, stable: "blue" }).and.to.deep.include({ weights: { blue: 90, green: 10 }, releases: { blue: "blue-r3", green: "green-r4" } });
    expect(routingRecord(b)).to.include({ rev: 8, stable: "green" }).and.to.deep.include({ weights: { blue: 75, green: 25 }, releases: { blue: "blue-r9", green: "green-r8" } });
    expect(await fallback(a)).to.equal("blue/blue-r3");
    expect(await fallback(b)).to.equal("green/green-r8");
    // Names derive from the stack, so a second stack's run carries none of the first's.
    const buckets = b.resources.filter((r) => r.type === "aws:s3/bucket:Bucket").map((r) => r.id);
    expect(buckets).to.include.members(["picasso-widget-local-b-origin-blue", "picasso-widget-local-b-origin-green"]);
    for (const bucket of buckets) expect(bucket).to.match(/^picasso-widget-local-b-/);
    expect(String(b.outputs.keyValueStoreArn)).to.not.equal(String(a.outputs.keyValueStoreArn));
    // The same input gives the same declaration: no resource carried over, none lost.
    expect(again).to.deep.equal(a);
  });

  it("runs the next program cleanly after one failed with a config error", async () => {
    const good = await runProgram({ stackName: "local", config: midRollout("blue", 25, 5) });
    const bad = await runProgram({ stackName: "local", config: { ...midRollout("blue", 25, 5), "picasso-widget:weights": json({ blue: 70, green: 25 }) } }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(bad).to.be.instanceOf(ProgramError);
    expect((bad as ProgramError).message).to.match(/^stack local: picasso-widget:weights = \{"blue":70,"green":25\}: expected integers summing to 100$/);
    expect((bad as ProgramError).declaredResources).to.equal(0);
    const after = await runProgram({ stackName: "local", config: midRollout("blue", 25, 5) });
    expect(after).to.deep.equal(good);
  });

  it("fails the run in progress when its worker dies, naming how, and starts a new worker for the next run", async () => {
    await runProgram({ stackName: "local", config: midRollout("blue", 50, 6) });
    const [pid] = workerPids();
    expect(pid, "a worker process").to.be.a("number");
    const running = runProgram({ stackName: "local", config: midRollout("blue", 50, 6) }).then(
      () => undefined,
      (err: unknown) => err,
    );
    process.kill(pid, "SIGKILL");
    const err = await running;
    expect(err).to.be.instanceOf(ProgramError);
    expect((err as ProgramError).programErrorName).to.equal("Crash");
    expect((err as ProgramError).message).to.match(/^the program runner exited with signal SIGKILL without a result/);
    const next = await runProgram({ stackName: "local", config: midRollout("blue", 50, 6) });
    expect(routingRecord(next)).to.include({ rev: 6 });
    expect(workerPids()).to.have.length(1);
    expect(workerPids()).to.not.include(pid);
  });

  it("lets its parent exit while idle, and ends with it", async () => {
    const script = `
      const { execFileSync } = require("node:child_process");
      const { runProgram } = require(${JSON.stringify(path.join(REPO_ROOT, "automation", "local", "program.ts"))});
      const { localStackConfig } = require(${JSON.stringify(path.join(REPO_ROOT, "tests", "local", "support.ts"))});
      runProgram({ stackName: "local", config: localStackConfig() }).then((r) => {
        const worker = execFileSync("pgrep", ["-P", String(process.pid), "-f", "programWorker"], { encoding: "utf8" }).trim();
        console.log("declared " + r.resources.length + ", worker " + worker);
      });`;
    const child = spawn(process.execPath, ["--require", require.resolve("tsx/cjs"), "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    const code = await new Promise((resolve) => child.on("exit", resolve));
    expect(code).to.equal(0);
    const m = /^declared (\d+), worker (\d+)\n$/.exec(out);
    expect(m, out).to.not.equal(null);
    expect(Number(m![1])).to.be.greaterThan(0);
    // The worker notices that its parent is gone (its IPC channel closes) and exits too.
    const alive = () => {
      try {
        process.kill(Number(m![2]), 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 5000;
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive(), "the worker outlived its parent").to.equal(false);
  });
});
