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
import { parseJson, RELEASES_DIR, startE2E, type E2E } from "./support";
import * as path from "node:path";

const STEPS = ["--steps", "50,100"];
const BACKGROUND = { errorRate: 0.003, latencyMs: 0 };

describe("rollouts under background noise (issue 14)", function () {
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
});
