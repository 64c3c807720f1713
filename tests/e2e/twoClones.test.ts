// Two working folders on one stack, as an operator's laptop and a CI runner are: two clones of the repository, each
// with its own stack file, `bluegreen` run from each through the automation SDK and the Pulumi CLI stand-in (the path
// AWS stacks take). The rollout's lease and journal live in the stack's audit bucket, so each folder sees the other's
// rollout: a second deploy refuses, `status` reports it, a killed deploy is finished by `rollback` from the other
// folder, and `abort` from another process reverts it.
import { expect } from "chai";
import { spawn } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir, userInfo } from "node:os";
import * as path from "node:path";
import { LeaseStore } from "../../automation/lease";
import { STAND_IN_ROOT } from "../../automation/local/cloud";
import { REPO_ROOT } from "../../automation/local/state";
import type { StatusReport } from "../../automation/inspect";
import type { RollbackReport } from "../../automation/rollback";
import { freshViewers, parseJson, RELEASES_DIR, startE2E, type CliResult, type E2E } from "./support";

const STACK = "dev";
const LEASE_SECONDS = 3;
// Short bakes; no browser gate (its own tests cover it): this file is about who may change the stack.
const ROLLOUT = { steps: [50, 100], bakeSeconds: 1, probesPerStep: 40, minSamples: 10 };
const VERIFICATION = { healthPath: "/version.json", smoke: [{ path: "/", status: 200 }], browserGate: { enabled: false } };
const BIN = path.join(REPO_ROOT, "bin", "bluegreen.js");

interface Run {
  pid: number;
  child: ReturnType<typeof spawn>;
  done: Promise<CliResult & { exitedAt: number }>;
  stderrSoFar(): string;
  /** SIGKILL to the run's whole process group (the CLI and every child it started), as a CI runner's kill does. */
  killGroup(): void;
}

describe("two working folders on one stack: the lease and journal in the stack's backend", function () {
  this.timeout(180_000);
  let e2e: E2E;
  let a: string;
  let b: string;
  const awsEnv = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1", BLUEGREEN_LEASE_SECONDS: String(LEASE_SECONDS) };

  /** `bluegreen ...args` in folder `cwd`, in a process group of its own. */
  function start(cwd: string, args: string[]): Run {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...e2e.env, ...awsEnv }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<CliResult & { exitedAt: number }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, exitedAt: Date.now() })));
    return { pid: child.pid!, child, done, stderrSoFar: () => stderr, killGroup: () => process.kill(-child.pid!, "SIGKILL") };
  }
  const bg = (cwd: string, args: string[]) => start(cwd, args).done;
  const ok = async (res: Promise<CliResult> | CliResult, code = 0) => {
    const r = await res;
    expect(r.code, `exit code; stderr:\n${r.stderr}`).to.equal(code);
    return r;
  };
  const pulumi = (cwd: string, args: string[]): Promise<CliResult> =>
    new Promise((resolve) => {
      const child = spawn(path.join(STAND_IN_ROOT, "bin", "pulumi"), args, { cwd, env: e2e.env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  const deployArgs = (release: string, extra: string[] = []) => {
    const dir = release === "1.0.0" || release === "2.0.0" ? path.join(RELEASES_DIR, release) : e2e.release(release);
    return ["deploy", "--stack", STACK, "--artifact", dir, "--release", release, ...extra];
  };
  const status = async (cwd: string) => parseJson<StatusReport>((await ok(bg(cwd, ["status", "--stack", STACK, "--json"]))).stdout);
  const history = async () => JSON.parse((await ok(pulumi(a, ["stack", "history", "--json", "--page-size", "0", "--stack", STACK]))).stdout) as { version: number; message: string; result: string }[];
  async function waitFor(run: Run, pattern: RegExp, what: string): Promise<void> {
    for (let i = 0; i < 600 && !pattern.test(run.stderrSoFar()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(run.stderrSoFar(), `the deploy never reached ${what}`).to.match(pattern);
  }
  const viewers = () => freshViewers(e2e.cloud, STACK);
  /** Waits (reading the lease object itself, as `status` does) until a killed deploy's lease has expired. */
  async function awaitExpired(): Promise<void> {
    const bucket = String((await (await e2e.cloud.stack(STACK, a)).outputs()).auditBucket.value);
    const lease = new LeaseStore(e2e.cloud.s3, bucket, STACK);
    let view = await lease.view();
    for (let i = 0; i < 100 && view.state === "live"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      view = await lease.view();
    }
    expect(view.state, `the lease of a killed deploy should expire within ${LEASE_SECONDS} s`).to.equal("expired");
  }

  before(async function () {
    e2e = await startE2E();
    // Folder A: the stack as the README sets one up; folder B: a second clone carrying the same stack file.
    a = mkdtempSync(path.join(tmpdir(), "bluegreen-clone-a-"));
    mkdirSync(path.join(a, "stacks"));
    copyFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), path.join(a, "Pulumi.yaml"));
    copyFileSync(path.join(REPO_ROOT, "stacks", `Pulumi.${STACK}.yaml`), path.join(a, "stacks", `Pulumi.${STACK}.yaml`));
    await ok(pulumi(a, ["stack", "init", STACK]));
    await ok(pulumi(a, ["config", "set", "previewToken", "--secret", "--stack", STACK, "--", "token-two-clones-0123456789abcdef"]));
    await ok(pulumi(a, ["config", "set", "aws:endpoints", "--stack", STACK, "--", JSON.stringify([{ s3: e2e.cloud.s3Endpoint }])]));
    await ok(pulumi(a, ["config", "set", "aws:s3UsePathStyle", "--stack", STACK, "--", "true"]));
    await ok(pulumi(a, ["config", "set", "picasso-widget:rollout", "--stack", STACK, "--", JSON.stringify(ROLLOUT)]));
    await ok(pulumi(a, ["config", "set", "picasso-widget:verification", "--stack", STACK, "--", JSON.stringify(VERIFICATION)]));
    b = mkdtempSync(path.join(tmpdir(), "bluegreen-clone-b-"));
    cpSync(a, b, { recursive: true });
    await ok(bg(a, deployArgs("1.0.0")));
  });

  after(async () => {
    await e2e?.close();
    for (const dir of [a, b]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lets one of two concurrent deploys run: the other exits 2 naming it; status (and status --watch) in the other folder follow it; history has one rollout", async () => {
    const base = (await history())[0].version;
    const runs = [
      { folder: a, release: "2.0.0", run: start(a, deployArgs("2.0.0", ["--bake", "2s"])) },
      { folder: b, release: "2.1.0", run: start(b, deployArgs("2.1.0", ["--bake", "2s"])) },
    ];
    // The refused one exits first (it changes nothing); while the other still bakes, the refused folder asks status.
    const first = await Promise.race(runs.map((r) => r.run.done.then(() => r)));
    const loser = await first.run.done;
    expect(loser.code, `the first to exit is the refused deploy; stderr:\n${loser.stderr}`).to.equal(2);
    const winner = runs.find((r) => r !== first)!;
    expect(loser.stderr).to.match(new RegExp(`locked by a rollout in progress: ${userInfo().username}@${hostname()} pid ${winner.run.pid} \\(deploy ${winner.release.replace(/\./g, "\\.")}`));
    // `status --watch` in the refused folder follows the other's rollout to its end, one line per change.
    const watch = start(first.folder, ["status", "--stack", STACK, "--watch"]);
    const seen = await status(first.folder);
    expect(seen.rollout, "status in the refused deploy's folder").to.deep.include({ state: "in-progress", release: winner.release });
    expect(seen.rollout.holder).to.contain(`pid ${winner.run.pid}`);

    const done = await winner.run.done;
    expect(done.code, done.stderr).to.equal(0);
    const watched = await watch.done;
    expect(watched.code, watched.stderr).to.equal(0);
    const rel = winner.release.replace(/\./g, "\\.");
    expect(watched.stderr).to.match(new RegExp(`rollout in-progress: ${rel} shifting 100% \\(step 2 of 2\\) last verdict passed bake \\d+ s left by \\S+ pid ${winner.run.pid} `));
    const lines = watched.stderr.trim().split("\n");
    const lastFollowed = lines.map((l) => l.startsWith("rollout in-progress:")).lastIndexOf(true);
    expect(lines.slice(lastFollowed + 1), "watch ends with the status once the rollout is over").to.include("no rollout in progress");
    expect(await viewers()).to.deep.equal({ [`200 green ${winner.release}`]: 100 });
    const since = (await history()).filter((u) => u.version > base);
    expect(since.length).to.be.greaterThan(0);
    for (const u of since) expect(u.message, `update ${u.version}`).to.match(new RegExp(`^bluegreen deploy ${winner.release.replace(/\./g, "\\.")}:`));
    expect((await status(first.folder)).rollout.state).to.equal("idle");
  });

  // Each phase: SIGKILL to the deploy's process group in folder A, then `rollback` from folder B restores what fresh
  // viewers got before the rollout. Green (the winner's release) is stable throughout; blue is the candidate.
  const phases: { name: string; release: string; at: RegExp; fault?: boolean; status?: boolean }[] = [
    { name: "staging (candidate verified, no viewer traffic)", release: "3.0.0", at: /blue verified through the preview route/ },
    { name: "step 1 (50 percent, baking)", release: "3.1.0", at: /blue at 50%: .*baking/, status: true },
    { name: "step 2 (100 percent, baking)", release: "3.2.0", at: /blue at 100%: .*baking/ },
    { name: "the revert (its update applied, the edge not yet verified)", release: "3.3.0", at: /blue at 50%: .*baking/, fault: true },
  ];
  for (const phase of phases) {
    it(`after SIGKILL during ${phase.name} in one folder, rollback from the other restores the pre-rollout routing`, async () => {
      const before = await viewers();
      const stable = Object.keys(before)[0];
      const run = start(a, deployArgs(phase.release, ["--bake", "1s"]));
      try {
        await waitFor(run, phase.at, phase.name);
        if (phase.fault) {
          // Blue fails its 50 percent bake; once the revert starts, the edge is held on the step's routing so the
          // revert's update applies but is not yet seen: the kill lands between the two, viewers still split.
          e2e.cloud.setFault(STACK, "blue", { errorRate: 1, latencyMs: 0 });
          await waitFor(run, /reverting to the pre-rollout config/, "the revert");
          e2e.cloud.freezeEdge(STACK, true);
          for (let i = 0; i < 200 && !(await history()).some((u) => u.message.startsWith(`bluegreen revert ${phase.release}:`) && u.result === "succeeded"); i++) await new Promise((r) => setTimeout(r, 50));
        }
        run.killGroup();
      } finally {
        e2e.cloud.clearFaults(STACK);
      }
      const killed = await run.done;
      e2e.cloud.freezeEdge(STACK, false);
      expect(killed.signal, `the deploy was still running when killed; stderr:\n${killed.stderr}`).to.equal("SIGKILL");
      await awaitExpired();
      if (phase.status) {
        const s = await status(b);
        expect(s.rollout, "status in the other folder").to.deep.include({ state: "interrupted", release: phase.release, weight: 50, step: 1 });
        expect(s.rollout.holder).to.contain(`pid ${run.pid}`);
      }
      const rb = await ok(bg(b, ["rollback", "--stack", STACK, "--json"]));
      expect(parseJson<RollbackReport>(rb.stdout).restored.from).to.equal("interrupted-rollout");
      expect(rb.stderr).to.match(new RegExp(`finishing the interrupted rollout of ${phase.release.replace(/\./g, "\\.")} .*pid ${run.pid}`));
      expect(await viewers()).to.deep.equal(before);
      expect(stable).to.match(/^200 green /);
    });
  }

  it("refuses (exit 3, naming both) a journal the stack has moved past, and restores with --to", async () => {
    const settled = (await history()).find((u) => u.result === "succeeded" && /: green is stable$/.test(u.message))!;
    const run = start(a, deployArgs("4.0.0", ["--bake", "1s"]));
    await waitFor(run, /blue at 50%: .*baking/, "step 1");
    run.killGroup();
    await run.done;
    await awaitExpired();
    // Meanwhile someone applies the stack from folder B by hand: an update the journal does not know of.
    await ok(pulumi(b, ["config", "refresh", "--force", "--stack", STACK]));
    await ok(pulumi(b, ["up", "--yes", "--skip-preview", "--stack", STACK, "--message", "an operator's own pulumi up"]));
    const foreign = (await history())[0];
    const refused = await bg(b, ["rollback", "--stack", STACK]);
    expect(refused.code, refused.stderr).to.equal(3);
    expect(refused.stderr).to.match(new RegExp(`moved past the interrupted rollout of 4\\.0\\.0 .*pid ${run.pid}.*update ${foreign.version} \\(an operator's own pulumi up\\)`));
    expect((await history())[0].version, "the refusal changed nothing").to.equal(foreign.version);
    await ok(bg(b, ["rollback", "--stack", STACK, "--to", String(settled.version)]));
    expect(await viewers()).to.deep.equal({ [`200 green ${/deploy (\S+):/.exec(settled.message)![1]}`]: 100 });
    expect((await status(a)).rollout.state).to.equal("idle");
  });

  it("abort from another process during a bake: the deploy reverts and exits 1 naming who aborted", async () => {
    const before = await viewers();
    const run = start(a, deployArgs("5.0.0", ["--bake", "20s"]));
    await waitFor(run, /blue at 50%: .*baking/, "the 50 percent bake");
    const abort = start(b, ["abort", "--stack", STACK]);
    // abort prints its request once the mark is written, then waits for the rollout to let go of the lease.
    while (!/abort requested/.test(abort.stderrSoFar()) && abort.child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    const markedAt = Date.now();
    const res = await run.done;
    const aborted = await abort.done;
    const ms = res.exitedAt - markedAt;
    // Bake 20 s of 40 probe pairs (80 requests): one probe interval is 250 ms. The bound is generous for a loaded machine.
    console.log(`      abort marked → deploy exit: ${ms} ms`);
    expect(res.code, res.stderr).to.equal(1);
    expect(res.stderr).to.match(new RegExp(`interrupted by bluegreen abort from ${userInfo().username}@${hostname()} pid ${abort.pid} \\(abort`));
    expect(aborted.code, aborted.stderr).to.equal(0);
    expect(aborted.stderr).to.match(/abort requested: the rollout of 5\.0\.0 /);
    expect(aborted.stderr).to.match(new RegExp(`aborted: the rollout of 5\\.0\\.0 .* by \\S+ pid ${run.pid} .* ended rolled-back`));
    expect(ms, `the deploy should exit within 2 s plus one probe interval of the abort; it took ${ms} ms`).to.be.below(15_000);
    expect(await viewers()).to.deep.equal(before);
  });
});
