// The path AWS stacks take, end to end: `bluegreen` on stacks named dev, staging and production, run from a working
// folder of their own, through the automation SDK and the `pulumi` it finds on PATH (the local cloud's stand-in, with
// the cloud's state folder as its backend). Each stack reaches S3 with its own settings from its stack config
// (`aws:endpoints`, as a stack with an S3-compatible endpoint would), through a gateway that admits that stack's
// buckets only, as an environment-scoped IAM role does.
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { expect } from "chai";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import * as path from "node:path";
import { STAND_IN_ROOT } from "../../automation/local/cloud";
import { REPO_ROOT } from "../../automation/local/state";
import type { RollbackReport } from "../../automation/rollback";
import type { DeployReport } from "../../automation/rollout";
import type { StatusReport } from "../../automation/inspect";
import { freshViewers, parseJson, RELEASES_DIR, startAccessGateway, startE2E, type CliResult, type E2E } from "./support";

const STACKS = ["dev", "staging", "production"] as const;
const FAST = { steps: [10, 25, 50, 75, 100], bakeSeconds: 0, probesPerStep: 60, minSamples: 20 };

describe("the real path: dev, staging and production through the automation SDK and the Pulumi CLI stand-in", function () {
  this.timeout(300_000);
  let e2e: E2E;
  let work: string;
  const gateways: Awaited<ReturnType<typeof startAccessGateway>>[] = [];
  // s3rver's key pair, as the default credential chain would supply a role's keys.
  const awsEnv = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1", BLUEGREEN_LEASE_SECONDS: "3" };

  const bg = (args: string[], env: NodeJS.ProcessEnv = {}) => e2e.cli(args, { ...awsEnv, ...env }, work);
  /** The stand-in, run by hand in the working folder as a user runs `pulumi`. */
  const pulumi = (args: string[], opts: { kill?: (child: ReturnType<typeof spawn>) => void } = {}): Promise<CliResult> =>
    new Promise((resolve) => {
      // Its own process group, so that a kill reaches the whole `pulumi` process tree, as a CI runner's does.
      const child = spawn(path.join(STAND_IN_ROOT, "bin", "pulumi"), args, { cwd: work, env: e2e.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
      opts.kill?.(child);
    });
  const ok = async (res: Promise<CliResult> | CliResult, code = 0) => {
    const r = await res;
    expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(code);
    return r;
  };
  const deploy = async (stack: string, release: string, extra: string[] = [], code = 0) => {
    const dir = release === "1.0.0" || release === "2.0.0" ? path.join(RELEASES_DIR, release) : e2e.release(release);
    const res = await ok(bg(["deploy", "--stack", stack, "--artifact", dir, "--release", release, "--json", ...extra]), code);
    return parseJson<DeployReport>(res.stdout);
  };
  const status = async (stack: string) => parseJson<StatusReport>((await ok(bg(["status", "--stack", stack, "--json"]))).stdout);
  const viewers = (stack: string) => freshViewers(e2e.cloud, stack);
  const historyVersions = async (stack: string) => (JSON.parse((await ok(pulumi(["stack", "history", "--json", "--page-size", "0", "--stack", stack]))).stdout) as { version: number; message: string }[]);

  before(async function () {
    e2e = await startE2E();
    // A working folder of its own, as a clone of the repository is: Pulumi.yaml and the checked-in stack files.
    work = mkdtempSync(path.join(tmpdir(), "bluegreen-work-"));
    mkdirSync(path.join(work, "stacks"));
    copyFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), path.join(work, "Pulumi.yaml"));
    for (const stack of STACKS) {
      copyFileSync(path.join(REPO_ROOT, "stacks", `Pulumi.${stack}.yaml`), path.join(work, "stacks", `Pulumi.${stack}.yaml`));
      const gateway = await startAccessGateway(e2e.cloud.s3Endpoint, stack);
      gateways.push(gateway);
      // What the README tells a user to do once per stack, plus this test's fast rollouts and open gate.
      await ok(pulumi(["stack", "init", stack]));
      await ok(pulumi(["config", "set", "previewToken", "--secret", "--stack", stack, "--", `token-${stack}-0123456789abcdef`]));
      await ok(pulumi(["config", "set", "aws:endpoints", "--stack", stack, "--", JSON.stringify([{ s3: gateway.url }])]));
      await ok(pulumi(["config", "set", "aws:s3UsePathStyle", "--stack", stack, "--", "true"]));
      await ok(pulumi(["config", "set", "picasso-widget:rollout", "--stack", stack, "--", JSON.stringify(FAST)]));
      await ok(pulumi(["config", "set", "picasso-widget:approvals", "--stack", stack, "--", JSON.stringify({ required: [], holders: {} })]));
    }
  });

  after(async () => {
    for (const g of gateways) await g.close();
    await e2e?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("exits 3 with one line saying how to install the Pulumi CLI when there is none", async () => {
    const res = await e2e.cli(["status", "--stack", "dev"], { ...awsEnv, PATH: path.dirname(process.execPath) }, work);
    expect(res.code).to.equal(3);
    expect(res.stderr.trim().split("\n")).to.have.length(1);
    expect(res.stderr).to.match(/the Pulumi CLI is not installed .*get\.pulumi\.com/);
  });

  it("deploys 1.0.0, then shifts 2.0.0 onto green through every step, and reads dev by its fully qualified name", async () => {
    expect((await deploy("dev", "1.0.0")).result).to.equal("succeeded");
    const second = await deploy("dev", "2.0.0");
    expect(second.steps.map((s) => s.weight)).to.deep.equal([10, 25, 50, 75, 100]);
    expect(await viewers("dev")).to.deep.equal({ "200 green 2.0.0": 100 });
    const s = parseJson<StatusReport>((await ok(bg(["status", "--stack", "organization/picasso-widget/dev", "--json"]))).stdout);
    expect(s).to.deep.include({ stable: "green", weights: { blue: 0, green: 100 } });
    expect(s.rollout.state).to.equal("idle");
    // Every S3 request went through dev's own gateway, and none was refused.
    expect(gateways[0].denied).to.deep.equal([]);
  });

  it("`doctor` passes on dev: the Pulumi CLI on PATH, its login, the stack, and dev's buckets reached with dev's settings", async () => {
    const res = await ok(bg(["doctor", "--stack", "dev", "--json"]));
    const checks = parseJson<{ checks: { name: string; status: string; detail: string }[] }>(res.stdout).checks;
    expect(checks.map((c) => `${c.name} ${c.status}`)).to.deep.equal(["node pass", "pulumi pass", "backend pass", "stack pass", "aws pass", "browser pass"]);
    const detail = Object.fromEntries(checks.map((c) => [c.name, c.detail]));
    expect(detail.backend).to.equal(`logged in to ${e2e.cloud.pulumiEnv().PULUMI_BACKEND_URL} as ${userInfo().username}`);
    expect(detail.aws).to.match(/^region us-east-1, long-lived credentials; reached picasso-widget-dev-\S+, picasso-widget-dev-\S+$/);
    expect(res.stdout + res.stderr).to.not.include("S3RVER");
    expect(gateways[0].denied).to.deep.equal([]);
  });

  it("reverts a failing release with a revision above every one deployed, so a stack file from mid-rollout fails the guard", async () => {
    // The staging update and the first step's pass; the second step's fails: reverted with viewers already moved.
    // (An error-rate fault on blue was caught before or after the first step by chance, and the test needs the step.)
    e2e.cloud.failUps("dev", { skip: 2, fail: 1 });
    try {
      const report = await deploy("dev", "3.0.0", [], 1);
      expect(report.result).to.equal("rolled-back");
    } finally {
      e2e.cloud.clearFaults("dev");
    }
    expect(await viewers("dev")).to.deep.equal({ "200 green 2.0.0": 100 });
    const history = await historyVersions("dev");
    const midRollout = JSON.parse((await ok(pulumi(["stack", "history", "--json", "--page-size", "0", "--stack", "dev"]))).stdout).find((u: { message: string }) =>
      u.message.startsWith("bluegreen deploy 3.0.0: blue at"),
    ) as { config: Record<string, { value: string }> };
    const staleRevision = midRollout.config["picasso-widget:revision"].value;
    // A stack file refreshed mid-rollout, then a plain `pulumi up`: refused, and nothing moves.
    await ok(pulumi(["config", "set", "picasso-widget:revision", "--stack", "dev", "--", staleRevision]));
    const stale = await pulumi(["up", "--yes", "--skip-preview", "--stack", "dev"]);
    expect(stale.code).to.equal(255);
    expect(stale.stderr).to.match(new RegExp(`revision = ${staleRevision} is older than the deployed routing revision \\d+`));
    expect(await viewers("dev")).to.deep.equal({ "200 green 2.0.0": 100 });
    await ok(pulumi(["config", "refresh", "--force", "--stack", "dev"]));
    expect((await historyVersions("dev")).length).to.equal(history.length + 1);
  });

  it("rolls back twice (3.0.0 → 2.0.0 → 1.0.0), restoring only routing: a rotated token and new thresholds stay", async () => {
    expect((await deploy("dev", "3.0.0")).result).to.equal("succeeded");
    // After the release: the preview token is rotated and a threshold changed, as an operator would.
    await ok(pulumi(["config", "set", "previewToken", "--secret", "--stack", "dev", "--", "token-dev-rotated-0123456789"]));
    await ok(pulumi(["config", "set", "picasso-widget:rollout", "--stack", "dev", "--", JSON.stringify({ ...FAST, maxErrorRate: 0.04 })]));
    await ok(pulumi(["up", "--yes", "--skip-preview", "--stack", "dev", "--message", "rotate the preview token"]));

    const first = parseJson<RollbackReport>((await ok(bg(["rollback", "--stack", "dev", "--json"]))).stdout);
    expect(first).to.deep.include({ stable: "green", release: "2.0.0" });
    const second = parseJson<RollbackReport>((await ok(bg(["rollback", "--stack", "dev", "--json"]))).stdout);
    expect(second).to.deep.include({ stable: "blue", release: "1.0.0" });
    expect(await viewers("dev")).to.deep.equal({ "200 blue 1.0.0": 100 });
    const config = JSON.parse((await ok(pulumi(["config", "--json", "--show-secrets", "--stack", "dev"]))).stdout) as Record<string, { value: string }>;
    expect(config["picasso-widget:previewToken"].value).to.equal("token-dev-rotated-0123456789");
    expect(JSON.parse(config["picasso-widget:rollout"].value).maxErrorRate).to.equal(0.04);
  });

  it("rolls back --to an update older than the 10th, and refuses one whose release retention removed from S3", async () => {
    const history = await historyVersions("dev");
    const target = history.find((u) => u.message === "bluegreen deploy 2.0.0: green is stable")!;
    expect(history.findIndex((u) => u.version === target.version), "older than the 10th update").to.be.at.least(10);
    const res = parseJson<RollbackReport>((await ok(bg(["rollback", "--stack", "dev", "--to", String(target.version), "--json"]))).stdout);
    expect(res).to.deep.include({ stable: "green", release: "2.0.0" });
    expect(await viewers("dev")).to.deep.equal({ "200 green 2.0.0": 100 });

    // 3.0.0's update is a target whose objects are gone from blue's bucket: refused, nothing changed.
    const to3 = (await historyVersions("dev")).find((u) => u.message === "bluegreen deploy 3.0.0: blue is stable")!;
    const buckets = (await (await e2e.cloud.stack("dev", work)).outputs()).bucketNames.value as Record<string, string>;
    await e2e.cloud.s3.send(new DeleteObjectCommand({ Bucket: buckets.blue, Key: "blue/3.0.0/index.html" }));
    const before = await historyVersions("dev");
    const refused = await bg(["rollback", "--stack", "dev", "--to", String(to3.version)]);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.match(/expected 3\.0\.0 to be complete in blue's bucket/);
    expect(await historyVersions("dev")).to.deep.equal(before);
    expect(await viewers("dev")).to.deep.equal({ "200 green 2.0.0": 100 });
  });

  it("reports another process's update in progress, refuses to deploy over it, and names `pulumi cancel` once its holder is gone", async () => {
    e2e.cloud.delayUps("dev", 3000);
    let killed = false;
    const other = pulumi(["up", "--yes", "--skip-preview", "--stack", "dev", "--message", "someone's pulumi up"], {
      kill: (child) => setTimeout(() => ((killed = true), process.kill(-child.pid!, "SIGKILL")), 1500),
    });
    try {
      // While it runs: status and history report it; deploy refuses (exit 3).
      let s = await status("dev");
      for (let i = 0; i < 20 && s.rollout.state !== "in-progress"; i++) s = await status("dev");
      expect(s.rollout.state).to.equal("in-progress");
      expect(s.rollout.phase).to.match(/^update \d+ in progress since \d{4}-/);
      expect(s.lastUpdate?.endTime).to.equal(null);
      const history = await ok(bg(["history", "--stack", "dev"]));
      expect(history.stderr).to.match(/in-progress .* someone's pulumi up/);
      await other;
      expect(killed).to.equal(true);
    } finally {
      e2e.cloud.delayUps("dev", 0);
    }
    // Its client was killed mid-update: the update stays open, as a killed `pulumi up` leaves a service stack's.
    await new Promise((r) => setTimeout(r, 2000));
    const refused = await bg(["deploy", "--stack", "dev", "--artifact", e2e.release("4.0.0"), "--release", "4.0.0"]);
    expect(refused.code).to.equal(3);
    expect(refused.stderr).to.match(/in progress since .*pulumi cancel --yes --stack dev/);
    await ok(pulumi(["cancel", "--yes", "--stack", "dev"]));
    expect((await status("dev")).rollout.state).to.equal("idle");
  });

  it("says what the edge serves when it differs from the deployed config (a routing update that has not reached it)", async () => {
    const updates = JSON.parse((await ok(pulumi(["stack", "history", "--json", "--page-size", "0", "--stack", "dev"]))).stdout) as { config: Record<string, { value?: string }> }[];
    const highest = Math.max(...updates.map((u) => Number(u.config["picasso-widget:revision"]?.value ?? 0)));
    e2e.cloud.freezeEdge("dev", true);
    try {
      await ok(pulumi(["config", "refresh", "--force", "--stack", "dev"]));
      await ok(pulumi(["config", "set", "picasso-widget:revision", "--stack", "dev", "--", String(highest + 1)]));
      await ok(pulumi(["up", "--yes", "--skip-preview", "--stack", "dev", "--message", "a routing update the edge has not read yet"]));
      const res = await ok(bg(["status", "--stack", "dev", "--json"]));
      const s = parseJson<StatusReport>(res.stdout);
      expect(s.revision).to.equal(highest + 1);
      expect(s.edge?.revision).to.be.below(highest + 1);
      expect(s.edge?.viewers).to.deep.equal({ "green/2.0.0": 20 });
      expect(res.stderr).to.match(new RegExp(`the edge differs from the config: it reads routing revision \\d+, not ${highest + 1}; 20 fresh viewers: 20 on green/2.0.0`));
    } finally {
      e2e.cloud.freezeEdge("dev", false);
    }
    expect((await status("dev")).edge).to.equal(undefined);
  });

  it("after a revert that fails, judges from the newest successful update: status shows the step the edge serves, deploy refuses", async () => {
    // Staging and the 10 percent step apply; the 25 percent step's up and the revert's up fail.
    e2e.cloud.failUps("dev", { skip: 2, fail: 2 });
    const report = await deploy("dev", "4.0.0", [], 3);
    expect(report.result).to.equal("failed");
    const s = await status("dev");
    expect(s.weights).to.deep.equal({ blue: 10, green: 90 });
    expect(s.rollout.state).to.equal("interrupted");
    const refused = await bg(["deploy", "--stack", "dev", "--artifact", e2e.release("5.0.0"), "--release", "5.0.0"]);
    expect(refused.code).to.equal(3);
    await ok(bg(["rollback", "--stack", "dev"]));
    expect(await viewers("dev")).to.deep.equal({ "200 green 2.0.0": 100 });
  });

  it("leaves the old slot stable when the runner dies in the 100 percent bake: a release nobody judged is not settled", async () => {
    const run = e2e.start(["deploy", "--stack", "dev", "--artifact", e2e.release("6.0.0"), "--release", "6.0.0", "--steps", "100", "--bake", "30s"], awsEnv, work);
    for (let i = 0; i < 600 && !/blue at 100%: .*baking/.test(run.stderrSoFar()); i++) await new Promise((r) => setTimeout(r, 100));
    run.child.kill("SIGKILL");
    await run.done;
    // Its lease, in dev's audit bucket, expires 3 s after the last heartbeat; until then the rollout is in progress.
    let s = await status("dev");
    for (let i = 0; i < 30 && s.rollout.state === "in-progress"; i++) {
      await new Promise((r) => setTimeout(r, 500));
      s = await status("dev");
    }
    expect(s).to.deep.include({ stable: "green", weights: { blue: 100, green: 0 } });
    expect(s.rollout.state).to.equal("interrupted");
    await ok(bg(["rollback", "--stack", "dev"]));
    expect(await viewers("dev")).to.deep.equal({ "200 green 2.0.0": 100 });
  });

  it("promotes dev → staging → production, reading each source with the source's own access", async () => {
    for (const stack of ["staging", "production"]) expect((await deploy(stack, "1.0.0")).result).to.equal("succeeded");
    await ok(bg(["promote", "--from", "dev", "--to", "staging"]));
    expect(await viewers("staging")).to.deep.equal({ "200 green 2.0.0": 100 });
    await ok(bg(["promote", "--from", "staging", "--to", "production"]));
    expect(await viewers("production")).to.deep.equal({ "200 green 2.0.0": 100 });
    for (const g of gateways) expect(g.denied, "no stack's requests went to another stack's gateway").to.deep.equal([]);
  });

  it("lists every update in `history`, 30 and more, not the CLI's default page of 10", async () => {
    const all = await historyVersions("dev");
    expect(all.length).to.be.at.least(30);
    const report = parseJson<{ updates: { version: number }[] }>((await ok(bg(["history", "--stack", "dev", "--json"]))).stdout);
    expect(report.updates.map((u) => u.version)).to.deep.equal(all.map((u) => u.version));
  });
});
