// The driver end to end on the local cloud, through the CLI in a child process: the happy path, automatic revert on
// each kind of failure, signals, the lease, and rollback from history.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { deploy as deployInProcess, parseDuration } from "../../automation/deploy";
import { exitCodeOf } from "../../automation/errors";
import { currentHolder, LeaseStore } from "../../automation/lease";
import { Reporter } from "../../automation/output";
import type { DeployReport } from "../../automation/rollout";
import type { StatusReport } from "../../automation/inspect";
import type { RollbackReport } from "../../automation/rollback";
import type { ConfigMap } from "../../automation/port";
import { expectConfigRestored, freshViewers, parseJson, RELEASES_DIR, startE2E, type CliResult, type E2E } from "./support";

const R1 = path.join(RELEASES_DIR, "1.0.0");
const R2 = path.join(RELEASES_DIR, "2.0.0");

// The happy path, signals, the lease and rollback run the CLI as a child process; the revert cases call the same
// deploy() in this process, which keeps one warm program worker (a child CLI pays a cold start per run).

describe("bluegreen deploy / rollback on the local cloud", function () {
  this.timeout(180_000);
  let e2e: E2E;


  const viewers = (count = 200) => freshViewers(e2e.cloud, "local", count);

  function expectExit(res: CliResult, code: number): void {
    expect(res.code, `exit code; stderr:\n${res.stderr}`).to.equal(code);
  }

  async function deploy(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<{ res: CliResult; report: DeployReport }> {
    const res = await e2e.cli(["deploy", "--stack", "local", "--json", ...args], extraEnv);
    return { res, report: parseJson<DeployReport>(res.stdout) };
  }

  /** The same deploy as the CLI's, in this process (its program worker stays warm); exit code as the CLI maps it. */
  async function deployHere(artifact: string, release: string, bake?: string): Promise<{ res: CliResult; report: DeployReport }> {
    let stdout = "";
    let stderr = "";
    const reporter = new Reporter({ json: true, stdout: { write: (t: string) => ((stdout += t), true) }, stderr: { write: (t: string) => ((stderr += t), true) }, env: { CI: "true" } });
    let code = 0;
    try {
      await deployInProcess({ stack: "local", artifact, release, bakeMs: parseDuration("--bake", bake), json: true, dryRun: false }, reporter, { cloud: e2e.cloud });
    } catch (err) {
      code = exitCodeOf(err);
      stderr += `bluegreen: ${(err as Error).message}\n`;
    }
    return { res: { code, signal: null, stdout, stderr }, report: parseJson<DeployReport>(stdout) };
  }

  async function waitFor(pattern: RegExp, stderr: () => string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(stderr())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; stderr so far:\n${stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  before(async function () {
    e2e = await startE2E();
    // A killed deploy's lease expires 3 s after its last heartbeat (30 s by default).
    e2e.env.BLUEGREEN_LEASE_SECONDS = "3";
    // Enough fresh viewers per step that the observed share is within 5 points of the weight (sd ≤ 1.6 points).
    await e2e.tune({ rollout: { bakeSeconds: 0, probesPerStep: 1000, minSamples: 20 } });
    const { res, report } = await deploy(["--artifact", R1, "--release", "1.0.0"]);
    expectExit(res, 0);
    expect(report.slot).to.equal("blue");
  });

  after(async () => {
    await e2e?.close();
  });

  it("shifts release 2 onto green through 10/25/50/75/100 with each observed share within 5 points, then green is stable", async () => {
    const summary = path.join(e2e.stateDir, "step-summary.md");
    const { res, report } = await deploy(["--artifact", R2, "--release", "2.0.0"], { GITHUB_STEP_SUMMARY: summary });
    expectExit(res, 0);
    expect(report.result).to.equal("succeeded");
    expect(readFileSync(summary, "utf8")).to.match(/### ✅ bluegreen deploy `local`: 2\.0\.0 on green — succeeded \(exit 0\)[\s\S]*\| 1 \| 10% \| ✅ passed \| \d+\.\d% of \d+ \|/);
    expect(report.steps.map((s) => s.weight)).to.deep.equal([10, 25, 50, 75, 100]);
    for (const step of report.steps) {
      expect(step.verdict).to.equal("passed");
      expect(step.viewerSamples).to.be.at.least(1000);
      expect(Math.abs(step.observedShare - step.weight), `step ${step.weight}%: observed ${step.observedShare}%`).to.be.at.most(5);
    }
    expect(await viewers()).to.deep.equal({ "200 green 2.0.0": 200 });
    const status = await e2e.cli(["status", "--stack", "local", "--json"]);
    expectExit(status, 0);
    const s = parseJson<StatusReport>(status.stdout);
    expect(s).to.deep.include({ stable: "green", weights: { blue: 0, green: 100 } });
    expect(s.slots).to.deep.equal({ blue: { release: "1.0.0" }, green: { release: "2.0.0" } });
    expect(s.rollout.state).to.equal("idle");
  });

  describe("automatic revert (green stable with 2.0.0, blue receives the new release)", () => {
    let before: ConfigMap;
    const R3 = () => e2e.release("3.0.0");

    beforeEach(async () => {
      await e2e.tune({ rollout: { bakeSeconds: 0, probesPerStep: 100, minSamples: 20 } });
      before = await e2e.config();
    });

    afterEach(() => {
      e2e.cloud.clearFaults("local");
    });

    async function expectReverted(report: DeployReport, res: CliResult, metric: string, step: number): Promise<void> {
      expectExit(res, 1);
      expect(report.result).to.equal("rolled-back");
      expect(report.rollback?.metric, JSON.stringify(report.rollback)).to.equal(metric);
      expect(report.rollback?.step).to.equal(step);
      expect(report.rollback?.weight).to.equal([10, 25, 50, 75, 100][step]);
      await expectConfigRestored(e2e, before);
      expect(await viewers()).to.deep.equal({ "200 green 2.0.0": 200 });
    }

    it("returns traffic to green when blue's error rate is 30 percent: reverted at the first step, exit 1", async () => {
      e2e.cloud.setFault("local", "blue", { errorRate: 0.3, latencyMs: 0 });
      const { res, report } = await deployHere(R3(), "3.0.0");
      await expectReverted(report, res, "error-rate", 0);
      expect(report.rollback?.reason).to.match(/blue error rate \d+\.\d% is above the limit 5\.0%/);
    });

    it("returns traffic to green when blue's p95 latency regresses", async () => {
      e2e.cloud.setFault("local", "blue", { errorRate: 0, latencyMs: 250 });
      const { res, report } = await deployHere(R3(), "3.0.0");
      await expectReverted(report, res, "p95-latency", 0);
    });

    for (const step of [0, 1, 2, 3, 4]) {
      it(`returns traffic to green when pulumi up fails at step ${step + 1}`, async () => {
        // The first up stages the release; step k's up is the (k + 2)th.
        e2e.cloud.failUps("local", { skip: 1 + step, fail: 1 });
        const { res, report } = await deployHere(R3(), "3.0.0", "0s");
        await expectReverted(report, res, "up-failed", step);
        expect(report.steps.at(-1)?.verdict).to.equal("up-failed");
        expect(report.rollback?.reason).to.match(/pulumi up failed/);
      });
    }
  });

  describe("a revert that cannot complete", () => {
    it("reports result failed with exit 3 and the command to run, and `rollback` then finishes the revert", async () => {
      await e2e.tune({ rollout: { bakeSeconds: 0, probesPerStep: 100, minSamples: 20 } });
      const before = await e2e.config();
      // The staging up succeeds; the first step's up and the revert's up fail.
      e2e.cloud.failUps("local", { skip: 1, fail: 2 });
      const { res, report } = await deploy(["--artifact", e2e.release("3.0.0"), "--release", "3.0.0"]);
      expectExit(res, 3);
      expect(report.result).to.equal("failed");
      expect(report.rollback?.reason).to.match(/revert did not complete .*run: bluegreen rollback --stack local/);
      expect(res.stderr).to.match(/run: bluegreen rollback --stack local/);
      const status = parseJson<StatusReport>((await e2e.cli(["status", "--stack", "local", "--json"])).stdout);
      expect(status.rollout.state).to.equal("interrupted");
      const rb = await e2e.cli(["rollback", "--stack", "local", "--json"]);
      expectExit(rb, 0);
      await expectConfigRestored(e2e, before);
      expect(await viewers()).to.deep.equal({ "200 green 2.0.0": 200 });
    });
  });

  describe("signals and the lease", () => {
    beforeEach(async () => {
      await e2e.tune({ rollout: { bakeSeconds: 0, probesPerStep: 100, minSamples: 20 } });
    });

    it("reverts on SIGTERM during a bake before the process exits", async () => {
      const before = await e2e.config();
      const run = e2e.start(["deploy", "--stack", "local", "--artifact", e2e.release("3.0.0"), "--release", "3.0.0", "--bake", "20s"]);
      await waitFor(/blue at 10%: .*baking/, run.stderrSoFar);
      run.child.kill("SIGTERM");
      const res = await run.done;
      expectExit(res, 1);
      expect(res.stderr).to.match(/SIGTERM: reverting before exit/);
      await expectConfigRestored(e2e, before);
      expect(await viewers()).to.deep.equal({ "200 green 2.0.0": 200 });
    });

    it("after SIGKILL during a step, status reports the interrupted rollout and rollback restores", async () => {
      const before = await e2e.config();
      const run = e2e.start(["deploy", "--stack", "local", "--artifact", e2e.release("3.0.0"), "--release", "3.0.0", "--bake", "20s"]);
      await waitFor(/blue at 10%: .*baking/, run.stderrSoFar);
      run.child.kill("SIGKILL");
      await run.done;
      // Live until its lease expires (no heartbeat renews it any more), then interrupted.
      let status = parseJson<StatusReport>((await e2e.cli(["status", "--stack", "local", "--json"])).stdout);
      for (let i = 0; i < 30 && status.rollout.state === "in-progress"; i++) {
        await new Promise((r) => setTimeout(r, 500));
        status = parseJson<StatusReport>((await e2e.cli(["status", "--stack", "local", "--json"])).stdout);
      }
      expect(status.rollout).to.deep.include({ state: "interrupted", release: "3.0.0", weight: 10 });
      const rb = await e2e.cli(["rollback", "--stack", "local", "--json"]);
      expectExit(rb, 0);
      expect(parseJson<RollbackReport>(rb.stdout).restored.from).to.equal("interrupted-rollout");
      await expectConfigRestored(e2e, before);
      expect(await viewers()).to.deep.equal({ "200 green 2.0.0": 200 });
      const after = parseJson<StatusReport>((await e2e.cli(["status", "--stack", "local", "--json"])).stdout);
      expect(after.rollout.state).to.equal("idle");
    });

    it("refuses a second deploy while one runs, naming the holder, and the first completes unaffected", async () => {
      const first = e2e.start(["deploy", "--stack", "local", "--artifact", e2e.release("3.0.0"), "--release", "3.0.0", "--bake", "2s", "--steps", "50,100"]);
      await waitFor(/baking/, first.stderrSoFar);
      const second = await e2e.cli(["deploy", "--stack", "local", "--artifact", e2e.release("4.0.0"), "--release", "4.0.0"]);
      expectExit(second, 2);
      expect(second.stderr).to.match(new RegExp(`locked by a rollout in progress: .*pid ${first.child.pid} \\(deploy 3\\.0\\.0`));
      const res = await first.done;
      expectExit(res, 0);
      expect(await viewers()).to.deep.equal({ "200 blue 3.0.0": 200 });
    });
  });

  describe("rollback from history", () => {
    it("walks back two releases when run twice (3.0.0 → 2.0.0 → 1.0.0)", async () => {
      const first = await e2e.cli(["rollback", "--stack", "local", "--json"]);
      expectExit(first, 0);
      expect(parseJson<RollbackReport>(first.stdout)).to.deep.include({ stable: "green", release: "2.0.0" });
      expect(await viewers()).to.deep.equal({ "200 green 2.0.0": 200 });
      expect(first.stderr).to.match(/traffic restored in \d+ ms/);

      const second = await e2e.cli(["rollback", "--stack", "local", "--json"]);
      expectExit(second, 0);
      expect(parseJson<RollbackReport>(second.stdout)).to.deep.include({ stable: "blue", release: "1.0.0" });
      expect(await viewers()).to.deep.equal({ "200 blue 1.0.0": 200 });
    });

    it("takes over the expired lease of a deploy that died outside a rollout (no journal), and deploys", async () => {
      const dead = spawnSync(process.execPath, ["-e", "0"]).pid;
      const store = new LeaseStore(e2e.cloud.s3, String((await (await e2e.cloud.stack("local")).outputs()).auditBucket.value), "local");
      const now = Date.now();
      const holder = { ...currentHolder("deploy 9.9.9"), user: "ci", pid: dead };
      await store.write({ stack: "local", holder, renewedAt: new Date(now - 60_000).toISOString(), expiresAt: new Date(now - 30_000).toISOString() }, (await store.read())?.etag);
      const { res } = await deploy(["--artifact", e2e.release("5.0.0"), "--release", "5.0.0", "--steps", "100", "--bake", "0s"]);
      expectExit(res, 0);
      expect(res.stderr).to.match(new RegExp(`taking over the lease of ci@.* pid ${dead} \\(deploy 9\\.9\\.9.*which expired at`));
      expect(await viewers()).to.deep.equal({ "200 green 5.0.0": 200 });
    });
  });
});
