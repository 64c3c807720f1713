// Ctrl-C as a terminal sends it: SIGINT to the deploy's whole process group (the CLI is started as the leader of a
// group of its own, as a shell starts a foreground job), once and twice, at each phase of a rollout. Whenever the
// deploy exits, every fresh viewer gets the stable release and the stack has no update left in progress. And the
// children that share the driver's fate by default (the Pulumi CLI the SDK runs, the program runner) outlive a group
// SIGINT in the middle of an `up`.
import { expect } from "chai";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { readHistory } from "../../automation/history";
import { REPO_ROOT, StackFiles } from "../../automation/local/state";
import { collect, RELEASES_DIR, startE2E, type CliResult, type Collected as Run, type E2E } from "./support";

const BIN = path.join(REPO_ROOT, "bin", "bluegreen.js");
const STABLE = "200 blue 1.0.0";
/** Every `up` takes this much longer once set: the window in which a signal lands during an update in progress. */
const UP_DELAY_MS = 1000;

/** A step's script from one of the workflows, by its name: what the runner hands to `bash -e`. */
function workflowStep(workflow: string, job: string, name: string): string {
  const parsed = parseYaml(readFileSync(path.join(REPO_ROOT, ".github", "workflows", workflow), "utf8")) as { jobs: Record<string, { steps: { name?: string; run?: string }[] }> };
  const run = parsed.jobs[job].steps.find((s) => s.name === name)?.run;
  if (run === undefined) throw new Error(`${workflow}: job ${job} has no step named ${JSON.stringify(name)}`);
  return run;
}

/** A process and all its descendants by parent pid, as the Actions runner finds "the process tree" it kills. */
function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8" }).trim().split("\n").filter(Boolean).map(Number);
  } catch {
    // no children
  }
  return [pid, ...children.flatMap(processTree)];
}

async function waitFor(what: string, ready: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One cookieless GET through the local edge: "<status> <slot> <release>" as the viewer saw it. */
function freshViewer(url: string, host: string): Promise<string> {
  return new Promise((resolve, reject) =>
    get(`${url}/version.json`, { headers: { host } }, (res) => {
      res.resume();
      resolve(`${res.statusCode} ${String(res.headers["x-bluegreen-slot"] ?? "-")} ${String(res.headers["x-bluegreen-release"] ?? "-")}`);
    }).on("error", reject),
  );
}

describe("signals: SIGINT to a deploy's whole process group", function () {
  this.timeout(120_000);
  let e2e: E2E;
  let running: Run | undefined;

  /** `bluegreen deploy` as a terminal's foreground job: the leader of a process group of its own. */
  function startDeploy(release: string, steps: string, bake: string): Run {
    const args = ["deploy", "--stack", "local", "--artifact", e2e.release(release), "--release", release, "--steps", steps, "--bake", bake];
    running = collect(spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: e2e.env, stdio: ["ignore", "pipe", "pipe"], detached: true }));
    return running;
  }

  /** True once the deploy has launched its browser (Playwright starts Chromium as the deploy's child). */
  const browserOf = (pid: number) => {
    try {
      return execFileSync("pgrep", ["-P", String(pid), "-f", "chrom|headless"], { encoding: "utf8" }).trim() !== "";
    } catch {
      return false;
    }
  };

  const ctrlC = (run: Run, signal: NodeJS.Signals = "SIGINT") => process.kill(-run.child.pid!, signal);

  /** Polled straight from the local backend's files (through the SDK, each look would take several CLI calls). */
  const updateInProgress = (message: RegExp) => new StackFiles(e2e.stateDir, "local").readHistory().some((u) => u.result === "in-progress" && message.test(u.message ?? ""));

  /** After the deploy: 20 fresh viewers, what each got, and whether the stack still has an update open. */
  async function aftermath(): Promise<{ viewers: Record<string, number>; open: string[] }> {
    const viewers: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const seen = await freshViewer(e2e.cloud.url, e2e.cloud.host("local"));
      viewers[seen] = (viewers[seen] ?? 0) + 1;
    }
    const history = await readHistory(await e2e.cloud.stack("local"));
    return { viewers, open: history.filter((u) => u.result === "in-progress").map((u) => `update ${u.version}: ${u.message}`) };
  }

  async function expectStable(run: Run, reason: RegExp): Promise<CliResult> {
    const res = await run.done;
    expect(res.code, `exit code; stderr:\n${res.stderr}`).to.equal(1);
    expect(res.stderr, res.stderr).to.match(reason);
    expect(res.stderr).to.not.match(/revert did not complete/);
    const { viewers, open } = await aftermath();
    expect(viewers, res.stderr).to.deep.equal({ [STABLE]: 20 });
    expect(open, "updates left in progress").to.deep.equal([]);
    return res;
  }

  before(async function () {
    e2e = await startE2E();
    await e2e.tune({ rollout: { bakeSeconds: 0, probesPerStep: 40, minSamples: 20, failureThreshold: 1 }, verification: { browserGate: { enabled: false } } });
    const first = await e2e.cli(["deploy", "--stack", "local", "--artifact", path.join(RELEASES_DIR, "1.0.0"), "--release", "1.0.0", "--steps", "100", "--bake", "0s"]);
    expect(first.code, first.stderr).to.equal(0);
    expect((await aftermath()).viewers).to.deep.equal({ [STABLE]: 20 });
  });

  afterEach(async () => {
    // A test that failed half way leaves no deploy running into the next one.
    if (running && running.child.exitCode === null && running.child.signalCode === null) {
      process.kill(-running.child.pid!, "SIGKILL");
      await running.done;
    }
    e2e.cloud.delayUps("local", 0);
    e2e.cloud.clearFaults("local");
  });

  after(async () => {
    await e2e?.close();
  });

  // The phases: where the first SIGINT lands. `at` waits for the phase; an `up` started after `slow` is set is slow.
  const phases: { name: string; steps: string; bake: string; at: (run: Run) => Promise<void>; reason: RegExp; slowFromStart?: boolean; fault?: boolean; browserGate?: boolean; times?: (1 | 2)[]; second?: NodeJS.Signals }[] = [
    {
      name: "staging (the staging update in progress)",
      steps: "50,100",
      bake: "1s",
      slowFromStart: true,
      at: () => waitFor("the staging update", () => updateInProgress(/: stage on green$/)),
      reason: /rolled back at 0%: interrupted by SIGINT/,
    },
    {
      // Playwright's own SIGINT handler used to close the browser and exit 130 here, reverting nothing.
      name: "staging (the real-browser gate)",
      steps: "50,100",
      bake: "1s",
      browserGate: true,
      times: [1],
      at: (run) => waitFor("the browser gate's Chromium", () => browserOf(run.child.pid!)),
      reason: /rolled back at 0%: interrupted by SIGINT/,
    },
    { name: "step 1 of 2 (50%, baking)", steps: "50,100", bake: "3s", at: (run) => waitFor("the 50% bake", () => /green at 50%: .*baking/.test(run.stderr())), reason: /rolled back at 50%: interrupted by SIGINT/ },
    // The second signal SIGTERM: what GitHub sends 7.5 s after the SIGINT when a job is cancelled. Its first SIGINT is
    // the "once" case of this step as well (the same answer is checked), so that is not run separately: it saves a
    // rollout's worth of test time.
    { name: "step 2 of 2 (100%, baking)", steps: "50,100", bake: "3s", second: "SIGTERM", times: [2], at: (run) => waitFor("the 100% bake", () => /green at 100%: .*baking/.test(run.stderr())), reason: /rolled back at 100%: interrupted by SIGINT/ },
    {
      name: "the revert of a failed release (its update in progress)",
      steps: "50,100",
      bake: "1s",
      fault: true,
      at: () => waitFor("the revert's update", () => updateInProgress(/^bluegreen revert /)),
      reason: /rolled back at 0%: green serves \/\S+ with status 503/,
    },
  ];

  let n = 3;
  for (const phase of phases) {
    for (const times of phase.times ?? [1, 2]) {
      const second = phase.second ?? "SIGINT";
      const what = times === 1 ? "SIGINT once" : second === "SIGINT" ? "SIGINT twice" : `SIGINT, then ${second}`;
      it(`${what} at ${phase.name}: exits 1 with every fresh viewer on the stable release`, async () => {
        const release = `${n++}.0.0`;
        if (phase.browserGate) await e2e.tune({ verification: { browserGate: { enabled: true, loads: 1 } } });
        // A failing release: every request to green answers 503, so the staging verification reverts by itself.
        if (phase.fault) e2e.cloud.setFault("local", "green", { errorRate: 1, latencyMs: 0 });
        if (phase.slowFromStart || phase.fault) e2e.cloud.delayUps("local", UP_DELAY_MS);
        const run = startDeploy(release, phase.steps, phase.bake);
        await phase.at(run);
        // Set before the signal, so the revert's update (which starts after it) stays in progress long enough to be hit.
        e2e.cloud.delayUps("local", UP_DELAY_MS);
        ctrlC(run);
        if (times === 2) {
          // One signal answered before the next is sent: two SIGINTs pending at once are delivered as one.
          await waitFor("the answer to the first SIGINT", () => /^SIGINT: /m.test(run.stderr()));
          await waitFor("the revert's update", () => updateInProgress(/^bluegreen revert /));
          ctrlC(run, second);
        }
        const res = await expectStable(run, phase.reason);
        if (phase.browserGate) await e2e.tune({ verification: { browserGate: { enabled: false } } });
        const answers = res.stderr.split("\n").filter((l) => /^SIG(INT|TERM): /.test(l));
        expect(answers, res.stderr).to.have.length(times);
        if (phase.fault) {
          // Already reverting when the first signal came: every answer says so, with how far the revert got.
          for (const answer of answers) expect(answer).to.match(/^SIGINT: the revert is in progress \(revert 2\/4: pulumi up of the pre-rollout config \(revision \d+\)/);
        } else {
          expect(answers[0]).to.match(/^SIGINT: reverting before exit \(now: .+\); a further signal does not interrupt the revert$/);
          if (times === 2) expect(answers[1].startsWith(`${second}: `), answers[1]).to.equal(true);
          if (times === 2) expect(answers[1]).to.match(/^SIG(INT|TERM): the revert is in progress \(revert 2\/4: pulumi up of the pre-rollout config \(revision \d+\), \d+\.\d s after the first signal\); it is not interrupted: wait for it to finish$/);
        }
      });
    }
  }

  it("a cancelled GitHub job (SIGINT, SIGTERM, the process tree killed mid-revert): the workflows' own steps finish the revert, through the documented pulumi cancel, and a SIGINT does not cut that rollback short", async () => {
    // The job's working folder: the repository's CLI and the artifact where deploy.yml's steps expect them.
    const work = mkdtempSync(path.join(tmpdir(), "bluegreen-job-"));
    const release = "20.0.0";
    symlinkSync(path.join(REPO_ROOT, "bin"), path.join(work, "bin"));
    mkdirSync(path.join(work, "dist"));
    symlinkSync(e2e.release(release), path.join(work, "dist", "widget"));
    const github = { GITHUB_SERVER_URL: "https://github.example", GITHUB_REPOSITORY: "acme/widget", GITHUB_RUN_ID: "4242" };
    // A short lease, so that the finishing step's wait for the killed run's lease is short too.
    const env = { ...e2e.env, ...github, STACK: "local", BLUEGREEN_LEASE_SECONDS: "5" };
    /** A workflow step as the runner runs it: its script in `bash -e`, in the job's working folder. */
    const step = (workflow: string, job: string, name: string, extra: NodeJS.ProcessEnv = {}): Run =>
      collect(spawn("bash", ["-e", "-c", workflowStep(workflow, job, name)], { cwd: work, env: { ...env, ...extra }, stdio: ["ignore", "pipe", "pipe"] }));
    try {
      await e2e.tune({ rollout: { steps: [50, 100], bakeSeconds: 3 } });
      const rollout = step("deploy.yml", "deploy", "Roll out", { MODE: "deploy", RELEASE: release });
      running = rollout;
      await waitFor("the 50% bake", () => /green at 50%: .*baking/.test(rollout.stderr()));
      // The revert's `up` outlasts the runner's 10 s of signals here, as a real `pulumi up` may.
      e2e.cloud.delayUps("local", 4 * UP_DELAY_MS);
      // The runner signals the step's entry process only: with `exec` that is the CLI itself.
      process.kill(rollout.child.pid!, "SIGINT");
      await waitFor("the answer to SIGINT", () => /^SIGINT: /m.test(rollout.stderr()));
      process.kill(rollout.child.pid!, "SIGTERM");
      await waitFor("the revert's update", () => updateInProgress(/^bluegreen revert /));
      await waitFor(`the answer to SIGTERM; stderr so far:\n${rollout.stderr()}`, () => /^SIGTERM: /m.test(rollout.stderr()));
      for (const pid of processTree(rollout.child.pid!)) process.kill(pid, "SIGKILL");
      expect((await rollout.done).signal).to.equal("SIGKILL");
      e2e.cloud.delayUps("local", 0);
      expect(updateInProgress(/^bluegreen revert /), "the killed revert's update is left open").to.equal(true);

      // deploy.yml's next step waits for the killed run's lease, then refuses the open update, naming the way out.
      const finish = await step("deploy.yml", "deploy", "Finish the revert of an interrupted rollout", { RUN_URL: `${github.GITHUB_SERVER_URL}/${github.GITHUB_REPOSITORY}/actions/runs/${github.GITHUB_RUN_ID}` }).done;
      expect(finish.code, finish.stderr).to.equal(3);
      expect(finish.stderr).to.contain("pulumi cancel --yes --stack local (in GitHub Actions: run the rollback workflow with cancel-stuck-update)");
      // The rollback workflow with cancel-stuck-update: `pulumi cancel` (the stand-in, as the workflow's PATH finds it), then the rollback.
      const cancel = await step("rollback.yml", "rollback", "Cancel the stuck update").done;
      expect(cancel.code, cancel.stderr).to.equal(0);
      // And a cancel of that job while its rollback's `up` runs does not cut the rollback short.
      e2e.cloud.delayUps("local", 2 * UP_DELAY_MS);
      const rollingBack = step("rollback.yml", "rollback", "Roll back", { TO: "" });
      await waitFor("the rollback's update", () => updateInProgress(/^bluegreen rollback: finish the interrupted rollout of 20\.0\.0/));
      process.kill(rollingBack.child.pid!, "SIGINT");
      const rollback = await rollingBack.done;
      e2e.cloud.delayUps("local", 0);
      expect(rollback.code, rollback.stderr).to.equal(0);
      expect(rollback.stderr).to.match(/^SIGINT: the rollback is in progress \(2\/4: pulumi up \(revision \d+\)\); it is not interrupted: wait for it to finish$/m);
      const report = JSON.parse(readFileSync(path.join(work, "report.json"), "utf8")) as { restored: { from: string } };
      expect(report.restored.from).to.equal("interrupted-rollout");
      const { viewers, open } = await aftermath();
      expect(viewers).to.deep.equal({ [STABLE]: 20 });
      expect(open).to.deep.equal([]);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("signals: the Pulumi CLI the SDK runs and the program runner outlive a group SIGINT", function () {
  this.timeout(60_000);
  let stateDir: string;
  beforeEach(() => (stateDir = mkdtempSync(path.join(tmpdir(), "bluegreen-signals-"))));
  afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

  /** The process group of a process (`ps -o pgid=`). */
  const groupOf = (pid: number) => Number(execFileSync("ps", ["-o", "pgid=", "-p", String(pid)], { encoding: "utf8" }).trim());

  it("completes an `up` through the SDK and the stand-in with SIGINT sent to the caller's group mid-update; the runner keeps its process", async () => {
    // A process that, like the driver, holds SIGINT itself, and owns a local cloud (so the program runner is its child).
    const script = `
      const { execFileSync } = require("node:child_process");
      const { startLocalCloud } = require(${JSON.stringify(path.join(REPO_ROOT, "automation", "local", "cloud.ts"))});
      const say = (line) => process.stdout.write(line + "\\n");
      const worker = () => execFileSync("pgrep", ["-P", String(process.pid), "-f", "programWorker"], { encoding: "utf8" }).trim();
      process.on("SIGINT", () => say("got SIGINT"));
      startLocalCloud({ stateDir: ${JSON.stringify(stateDir)} }).then(async (cloud) => {
        const stack = await cloud.stack("local");
        await stack.up({ message: "warm-up" });
        say("worker " + worker());
        cloud.delayUps("local", ${UP_DELAY_MS});
        const res = await stack.up({ message: "through a group SIGINT" }).catch((err) => ({ summary: { result: "threw: " + err.message.split("\\n")[0] } }));
        say("up " + res.summary.result + ", worker " + worker());
        await cloud.close();
      });`;
    const child = spawn(process.execPath, ["--require", require.resolve("tsx/cjs"), "-e", script], { stdio: ["ignore", "pipe", "inherit"], detached: true });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    await waitFor("the warm-up update", () => /worker \d+\n/.test(out));
    const worker = Number(/worker (\d+)\n/.exec(out)![1]);
    // The runner leads a group of its own; the caller's group is the caller's.
    expect(groupOf(worker)).to.equal(worker);
    expect(groupOf(child.pid!)).to.equal(child.pid);
    const files = new StackFiles(stateDir, "local");
    await waitFor("the second update in progress", () => files.readHistory().some((u) => u.result === "in-progress" && u.message === "through a group SIGINT"));
    process.kill(-child.pid!, "SIGINT");
    expect(await exited, out).to.equal(0);
    expect(out).to.contain("got SIGINT");
    expect(out).to.contain(`up succeeded, worker ${worker}\n`);
    expect(files.readHistory().map((u) => u.result)).to.deep.equal(["succeeded", "succeeded"]);
  });
});
