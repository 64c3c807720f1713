// The preview token (a Pulumi secret) never leaves the stack config: not in any command's stdout, stderr or JSON
// report, not in the GitHub job summary, the audit log, or the stack's rollout lease and journal, even while a rollout runs.
import { expect } from "chai";
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { LeaseStore } from "../../automation/lease";
import { stackDir } from "../../automation/local/state";
import { parseJson, PREVIEW_TOKEN, RELEASES_DIR, startE2E, type CliResult, type E2E } from "./support";

const R1 = path.join(RELEASES_DIR, "1.0.0");
const R2 = path.join(RELEASES_DIR, "2.0.0");

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

describe("bluegreen: the preview token never appears in output, reports, the driver's files or its lease", function () {
  this.timeout(180_000);
  let e2e: E2E;
  const runs: { label: string; expectCode: number; res: CliResult }[] = [];
  /** Every version of the stack's lease object (holder and journal) seen while the commands ran. */
  const leaseVersions = new Set<string>();
  let summaryFile: string;

  before(async function () {
    e2e = await startE2E();
    summaryFile = path.join(e2e.stateDir, "step-summary.md");
    e2e.env.GITHUB_STEP_SUMMARY = summaryFile;
    await e2e.tune({ rollout: { steps: [50, 100], bakeSeconds: 0, probesPerStep: 60, minSamples: 20 } });
    const bucket = String((await (await e2e.cloud.stack("local")).outputs()).auditBucket.value);
    const lease = new LeaseStore(e2e.cloud.s3, bucket, "local");
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const held = await lease.read().catch(() => undefined);
        if (held) leaseVersions.add(JSON.stringify(held.record));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const run = async (label: string, expectCode: number, args: string[]) => runs.push({ label, expectCode, res: await e2e.cli(args) });
    try {
      await run("deploy --json (first release)", 0, ["deploy", "--stack", "local", "--artifact", R1, "--release", "1.0.0", "--json"]);
      // Green answers every request with an error: the preview-route checks fail and the rollout reverts.
      e2e.cloud.setFault("local", "green", { errorRate: 1, latencyMs: 0 });
      await run("deploy --json (rolled back)", 1, ["deploy", "--stack", "local", "--artifact", R2, "--release", "2.0.0", "--json"]);
      e2e.cloud.clearFaults("local");
      await run("deploy --json (stepped)", 0, ["deploy", "--stack", "local", "--artifact", R2, "--release", "2.0.0", "--json"]);
      await run("status --json", 0, ["status", "--stack", "local", "--json"]);
      await run("history --json", 0, ["history", "--stack", "local", "--json"]);
      await run("verify --json", 0, ["verify", "--stack", "local", "--json"]);
      await run("verify --slot blue --json (preview route)", 0, ["verify", "--stack", "local", "--slot", "blue", "--json"]);
      await run("rollback --json", 0, ["rollback", "--stack", "local", "--json"]);
    } finally {
      watching = false;
      await watcher;
    }
  });

  after(async () => {
    await e2e?.close();
  });

  it("keeps it out of stdout, the JSON report and stderr of deploy (succeeded and rolled back), status, history, verify and rollback", () => {
    expect(runs.map((r) => r.label)).to.have.length(8);
    for (const { label, expectCode, res } of runs) {
      expect(res.code, `${label}: ${res.stderr}`).to.equal(expectCode);
      expect(parseJson<object>(res.stdout), label).to.be.an("object");
      expect(res.stdout, `${label} stdout`).not.to.contain(PREVIEW_TOKEN);
      expect(res.stderr, `${label} stderr`).not.to.contain(PREVIEW_TOKEN);
    }
    const rolledBack = parseJson<{ result: string }>(runs[1].res.stdout);
    expect(rolledBack.result).to.equal("rolled-back");
  });

  it("keeps it out of the GitHub job summary", () => {
    const summary = readFileSync(summaryFile, "utf8");
    expect(summary).to.contain("bluegreen deploy `local`");
    expect(summary).not.to.contain(PREVIEW_TOKEN);
  });

  it("keeps it out of the audit log", () => {
    const audit = readFileSync(path.join(stackDir(e2e.stateDir, "local"), "audit.jsonl"), "utf8");
    expect(audit.trim().split("\n").length).to.be.at.least(4); // deploy, revert, deploy, rollback
    expect(audit).not.to.contain(PREVIEW_TOKEN);
  });

  it("keeps it out of the stack's lease and journal, as written during the rollouts", () => {
    const seen = [...leaseVersions].map((text) => ({ text, record: JSON.parse(text) as { journal?: { phase: string; snapshot: object; secretKeys: string[] } } }));
    const journals = seen.filter((v) => v.record.journal !== undefined);
    expect(journals.length, "a journal was observed mid-rollout").to.be.greaterThan(0);
    expect(journals[0].record.journal!.secretKeys).to.include("picasso-widget:previewToken");
    expect(Object.keys(journals[0].record.journal!.snapshot)).to.include("picasso-widget:slots");
    for (const { text } of seen) expect(text).not.to.contain(PREVIEW_TOKEN);
  });

  it("keeps it out of every file in the state folder except the stack file and the backend's history", () => {
    // The local stack file keeps the token in plain text (it has no secrets provider: it guards loopback only), and
    // the stand-in's backend records each update's config as Pulumi's does. Those files must hold the token: proof
    // the search works.
    const stackFile = path.join(e2e.cloud.workDir, "stacks", "Pulumi.local.yaml");
    const engineFiles = new Set([stackFile, ...["history.json", "pending.json"].map((f) => path.join(stackDir(e2e.stateDir, "local"), f))]);
    const all = filesUnder(e2e.stateDir);
    expect(readFileSync(stackFile, "utf8")).to.contain(PREVIEW_TOKEN);
    const searched = all.filter((f) => !engineFiles.has(f));
    expect(searched.length).to.be.greaterThan(10);
    expect(searched.some((f) => f.endsWith("audit.jsonl"))).to.equal(true);
    for (const file of searched) expect(readFileSync(file).includes(PREVIEW_TOKEN), path.relative(e2e.stateDir, file)).to.equal(false);
    expect(searched.some((f) => f.includes(path.join("rollout", "local", "lease.json"))), "the lease object is among the files searched").to.equal(true);
  });
});
