// Issue 14's acceptance for the analysis, end to end through the CLI and the local cloud's edge: two healthy rollouts
// in a row under the same 0.3 percent background error rate on both slots complete (exit 0), while a candidate at 4
// percent errors against a clean stable slot is rolled back (exit 1). On top of the errors, 0.5 percent of the edge's
// connections are reset with no response: the prober sends those probes again and counts them apart.
//
// Not luck: the local stack file (stacks/Pulumi.local.yaml) judges 1000 fresh viewers and 500 preview probes per slot
// in each check, at confidence 0.99, minErrors 5, maxErrorRatio 2, failureThreshold 2. bench/analysis.ts's simulate()
// with that file's thresholds and the steps used here (50,100), 20,000 simulated rollouts each: 0.3 % errors on both
// slots rolled back 5 (0.025 %, so about 0.05 % for the two rollouts of the first test); 4 % against 0 % rolled back
// all 20,000 (19,617 at the first step). A probe still unanswered after three tries at a 0.5 % drop rate is 1.25e-7
// per probe. The faults draw from Math.random, so no seed is involved: these are the probabilities of the setup.
import { expect } from "chai";
import type { DeployReport } from "../../automation/rollout";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import * as path from "node:path";
import { stackDir } from "../../automation/local/state";
import { parseJson, PREVIEW_TOKEN, RELEASES_DIR, startE2E, type E2E } from "./support";

const STEPS = ["--steps", "50,100"];
const BACKGROUND = { errorRate: 0.003, latencyMs: 0 };

describe("rollouts under background noise, and the operator's view afterwards (issue 14)", function () {
  this.timeout(300_000);
  let e: E2E;

  before(async () => {
    e = await startE2E();
    const first = await e.cli(["deploy", "--stack", "local", "--artifact", path.join(RELEASES_DIR, "1.0.0"), "--release", "1.0.0"]);
    expect(first.code, first.stderr).to.equal(0);
  });
  after(async () => {
    await e?.close();
  });

  it("completes two healthy rollouts in a row under 0.3 % errors on both slots and 0.5 % dropped connections", async () => {
    e.cloud.setFault("local", "blue", BACKGROUND);
    e.cloud.setFault("local", "green", BACKGROUND);
    e.cloud.dropConnections("local", 0.005);
    let retried = 0;
    for (const release of ["2.0.0", "3.0.0"]) {
      const run = await e.cli(["deploy", "--stack", "local", "--artifact", e.release(release), "--release", release, ...STEPS, "--json"]);
      expect(run.code, `${release}: ${run.stderr}`).to.equal(0);
      const report = parseJson<DeployReport>(run.stdout);
      expect(report.result).to.equal("succeeded");
      expect(report.steps.map((s) => s.verdict)).to.deep.equal(["passed", "passed"]);
      for (const step of report.steps) {
        // The background errors were there and were measured on both slots, not charged to one.
        expect(step.metrics!.blue.requests + step.metrics!.green.requests).to.be.greaterThan(0);
        expect(step.unattributed!.transportFailures, "probes unanswered after every retry").to.equal(0);
        retried += step.unattributed!.transportRetries;
      }
    }
    // About 20 resets per check of 4000 probes: the retries happened, and none of them became an error.
    expect(retried, "probes sent again after no response").to.be.greaterThan(0);
  });

  it("rolls back a candidate at 4 % errors against a clean stable slot (exit 1), naming the slot, the cause and the fault", async () => {
    e.cloud.clearFaults("local");
    // After the two rollouts above, 3.0.0 on blue is stable and green is idle: the next release goes there.
    e.cloud.setFault("local", "green", { errorRate: 0.04, latencyMs: 0 });
    const run = await e.cli(["deploy", "--stack", "local", "--artifact", e.release("4.0.0"), "--release", "4.0.0", ...STEPS, "--json"]);
    expect(run.code, run.stderr).to.equal(1);
    const report = parseJson<DeployReport>(run.stdout);
    expect(report.result).to.equal("rolled-back");
    expect(report.slot).to.equal("green");
    expect(["error-ratio", "error-rate"]).to.include(report.rollback!.metric);
    expect(report.rollback!.reason).to.match(/^green error rate/);
    const last = run.stderr.trim().split("\n").at(-1)!;
    expect(last).to.include("4.0.0 rolled back at").and.include("green error rate");
    expect(last).to.include("the local cloud injects faults on local: green: error rate 0.04; clear them: bluegreen local fault --clear");
    e.cloud.clearFaults("local");
  });

  // verify's fresh-viewer check is the post-revert and post-rollback verification (verifyAllOn). 50 viewers a round:
  // at 2 % errors, 5 or more (minErrors) in a round is 0.3 %, in all three rounds 3e-8; at 60 % every round fails.
  it("verifies through background errors on the stable slot within its limit, and beyond it names the slot, the cause and the fault", async () => {
    e.cloud.setFault("local", "blue", { errorRate: 0.02, latencyMs: 0 });
    const within = await e.cli(["verify", "--stack", "local"]);
    expect(within.code, within.stderr).to.equal(0);
    // Passed, and still says what the local cloud injects: the errors viewers get are not the release's.
    expect(within.stderr).to.include("blue passed every check (the local cloud injects faults on local: blue: error rate 0.02; clear them: bluegreen local fault --clear)");
    const status = await e.cli(["status", "--stack", "local"]);
    expect(status.stderr).to.include("(the local cloud injects faults on local: blue: error rate 0.02; clear them: bluegreen local fault --clear)");
    e.cloud.setFault("local", "blue", { errorRate: 0.6, latencyMs: 0 });
    const beyond = await e.cli(["verify", "--stack", "local"]);
    e.cloud.clearFaults("local");
    expect(beyond.code, beyond.stderr).to.equal(3);
    const last = beyond.stderr.trim().split("\n").at(-1)!;
    expect(last).to.match(/^bluegreen: verification of local failed: \d+ of 50 viewers were not served blue\/3\.0\.0: \d+ answered an error with no slot header \(unattributable: the edge, or either slot\) \(3 rounds of 50 fresh viewers\)/);
    expect(last).to.include("(the local cloud injects faults on local: blue: error rate 0.6; clear them: bluegreen local fault --clear)");
  });

  // The operator's view of the same stack afterwards: blue serves 3.0.0, green idle with 2.0.0.
  it("prints the idle slot's URL with `open --slot`, which serves its release and carries no token; --browser hands it to $BROWSER", async () => {
    const run = await e.cli(["open", "--stack", "local", "--slot", "green"]);
    expect(run.code, run.stderr).to.equal(0);
    const url = new URL(run.stdout.trim());
    expect(url.pathname).to.equal("/_r/green/2.0.0/");
    expect(run.stdout).to.not.include(PREVIEW_TOKEN);
    expect(run.stderr).to.not.include(PREVIEW_TOKEN);
    // <stack>.bluegreen.localhost resolves to loopback in browsers (RFC 6761); here the edge is asked with that Host.
    const res = await fetchVia(e.cloud.url, url);
    expect([res.status, res.headers["x-bluegreen-slot"], res.headers["x-bluegreen-release"]]).to.deep.equal([200, "green", "2.0.0"]);

    const opened = path.join(e.stateDir, "opened.txt");
    const browser = path.join(e.stateDir, "browser.sh");
    writeFileSync(browser, `#!/bin/sh\necho "$@" > "${opened}"\n`, { mode: 0o755 });
    const viaBrowser = await e.cli(["open", "--stack", "local", "--slot", "green", "--browser"], { BROWSER: browser });
    expect(viaBrowser.code, viaBrowser.stderr).to.equal(0);
    await waitForFile(opened);
    expect(readFileSync(opened, "utf8").trim()).to.equal(url.toString());
  });

  it("`doctor` passes every check it needs on a deployed local stack (exit 0)", async () => {
    const run = await e.cli(["doctor", "--stack", "local", "--json"]);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    const report = parseJson<{ ok: boolean; checks: { name: string; status: string; detail: string }[] }>(run.stdout);
    expect(report.checks.map((c) => `${c.name} ${c.status}`)).to.deep.equal(["node pass", "pulumi pass", "backend pass", "stack pass", "aws skip", "browser pass"]);
    expect(report.checks.find((c) => c.name === "stack")!.detail).to.match(/^local: 3\.0\.0 on blue at 100%, last successful update \d+; viewers: http:\/\/local\.bluegreen\.localhost:\d+\/$/);
  });

  it("`rollback --now` puts every viewer on the last stable routing at once, unverified by design, and audits it", async () => {
    const run = await e.cli(["rollback", "--stack", "local", "--now", "--json"]);
    expect(run.code, run.stderr).to.equal(0);
    const report = parseJson<{ stable: string; release: string; verified: boolean; viewer: { url: string } }>(run.stdout);
    expect(report).to.deep.include({ stable: "green", release: "2.0.0", verified: false });
    expect(run.stderr).to.include("not verified with viewers: run bluegreen verify --stack local");
    // The edge read the new routing before the command returned: every fresh viewer lands on green now.
    const landed = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await fetchVia(e.cloud.url, new URL("/version.json", report.viewer.url));
      landed.add(`${res.status} ${String(res.headers["x-bluegreen-slot"])} ${String(res.headers["x-bluegreen-release"])}`);
    }
    expect([...landed]).to.deep.equal(["200 green 2.0.0"]);
    const audit = readFileSync(path.join(stackDir(e.stateDir, "local"), "audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { action: string; details: { now?: boolean } });
    expect(audit.at(-1)).to.deep.include({ action: "rollback" });
    expect(audit.at(-1)!.details.now).to.equal(true);
  });
});

/** GET through the edge's loopback address with the URL's host as the Host header. */
function fetchVia(edge: string, url: URL): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const at = new URL(edge);
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: at.hostname, port: at.port, path: url.pathname, headers: { host: url.host } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on("error", reject);
  });
}

async function waitForFile(file: string): Promise<void> {
  for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
  expect(existsSync(file), `${file} written by the $BROWSER stand-in within 10 s`).to.equal(true);
}
