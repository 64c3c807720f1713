// Ctrl-C as a terminal sends it: SIGINT to the deploy's whole process group (the CLI is started as the leader of a
// group of its own, as a shell starts a foreground job), once and twice, at each phase of a rollout. Whenever the
// deploy exits, every fresh viewer gets the stable release and the stack has no update left in progress. And the
// children that share the driver's fate by default (the Pulumi CLI the SDK runs, the program runner) outlive a group
// SIGINT in the middle of an `up`.
import { expect } from "chai";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { readHistory } from "../../automation/history";
import { REPO_ROOT, StackFiles } from "../../automation/local/state";
import { RELEASES_DIR, startE2E, type CliResult, type E2E } from "./support";

const BIN = path.join(REPO_ROOT, "bin", "bluegreen.js");
const STABLE = "200 blue 1.0.0";
/** Every `up` takes this much longer once set: the window in which a signal lands during an update in progress. */
const UP_DELAY_MS = 1000;

interface Run {
  child: ChildProcess;
  done: Promise<CliResult>;
  stderr(): string;
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
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: e2e.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<CliResult>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
    running = { child, done, stderr: () => stderr };
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
    // The second signal SIGTERM: what GitHub sends 7.5 s after the SIGINT when a job is cancelled.
    { name: "step 2 of 2 (100%, baking)", steps: "50,100", bake: "3s", second: "SIGTERM", at: (run) => waitFor("the 100% bake", () => /green at 100%: .*baking/.test(run.stderr())), reason: /rolled back at 100%: interrupted by SIGINT/ },
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
