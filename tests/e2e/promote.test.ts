// Promotion on the local cloud: three local stacks stand in for dev, staging and production (the last with the
// tech-lead, ops-lead and product-owner gate). Refusals run the CLI as a child process (exit codes); successful
// promotions run in-process on the same cloud. A local HTTP server answers as GitHub's REST API documents.
import { expect } from "chai";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import type { AuditRecord } from "../../automation/audit";
import { COMMAND_LINE_SOURCE } from "../../automation/approvals";
import { shipRelease } from "../../automation/deploy";
import { RolledBackError } from "../../automation/errors";
import { Reporter } from "../../automation/output";
import type { ConfigMap } from "../../automation/port";
import { promote } from "../../automation/promote";
import { HttpProber, probeMany, type ProbeResponse } from "../../automation/prober";
import { buildManifest, readManifest, type Manifest } from "../../automation/releases";
import type { DeployReport } from "../../automation/rollout";
import { readHistory } from "../../automation/history";
import { localAuditLog, openTarget } from "../../automation/targets";
import { parseJson, RELEASES_DIR, startE2E, type CliResult, type E2E } from "./support";

const DEV = "local-dev";
const STAGING = "local-staging";
const PRODUCTION = "local-production";
const GATE = {
  required: ["tech-lead", "ops-lead", "product-owner"],
  holders: { "tech-lead": ["alice-lead"], "ops-lead": ["omar-ops"], "product-owner": ["pat-product"] },
};
const ALL_THREE = ["tech-lead=alice-lead", "ops-lead=omar-ops", "product-owner=pat-product"];
const GITHUB_TOKEN = "ghs_promotetoken0123456789abcdefAB";

describe("bluegreen promote on the local cloud (dev → staging → production)", function () {
  this.timeout(120_000);
  let e2e: E2E;
  const quiet = () => new Reporter({ json: false, stderr: { write: () => true }, env: {} });

  function expectExit(res: CliResult, code: number): void {
    expect(res.code, `exit code; stderr:\n${res.stderr}`).to.equal(code);
  }

  const approveArgs = (values: string[]) => values.flatMap((v) => ["--approve", v]);

  async function auditOf(stack: string): Promise<AuditRecord[]> {
    return localAuditLog(stack, { stateDir: e2e.stateDir }).read();
  }

  /** What a stack's edge serves a fresh viewer for every file of the manifest. */
  async function served(stack: string, manifest: Manifest): Promise<ProbeResponse[]> {
    const prober = new HttpProber({ url: e2e.cloud.url, host: e2e.cloud.host(stack) }, 8);
    try {
      return await probeMany(prober, Object.keys(manifest.files).map((file) => ({ path: `/${file}`, follow: true })), { concurrency: 8, spreadMs: 0, sleep: async () => {} });
    } finally {
      prober.close();
    }
  }

  async function manifestOn(stack: string, release: string): Promise<Manifest> {
    const outputs = await (await e2e.cloud.stack(stack)).outputs();
    const buckets = outputs.bucketNames.value as Record<string, string>;
    const found = (await readManifest(e2e.cloud.s3, buckets.blue, release)) ?? (await readManifest(e2e.cloud.s3, buckets.green, release));
    if (!found) throw new Error(`${stack} holds no manifest of ${release}`);
    return found;
  }

  const historyLength = async (stack: string) => (await readHistory(await e2e.cloud.stack(stack))).length;

  /** `deploy` as the CLI runs it, in-process on the test's cloud (the CLI's own exit codes are covered by rollout.test.ts). */
  async function deploy(stack: string, artifact: string, release: string): Promise<DeployReport | undefined> {
    const { manifest, bodies } = await buildManifest(artifact, release);
    const target = await openTarget(stack, { cloud: e2e.cloud });
    try {
      return await shipRelease(target, { action: "deploy", manifest, bodies, subject: `--release = ${JSON.stringify(release)}` }, quiet());
    } finally {
      await target.close();
    }
  }

  // GitHub's "review history for a workflow run" for run 42 of acme/widget, as its REST documentation shows it.
  let github: Server;
  let reviews: object[] = [];
  let githubEnv: NodeJS.ProcessEnv;
  const review = (login: string, environment: string) => ({
    state: "approved",
    comment: "Ship it!",
    environments: [{ id: 161171787, node_id: "MDExOkVudmlyb25tZW50MTYxMTcxNzg3", name: environment, url: `https://api.github.com/repos/acme/widget/environments/${environment}`, html_url: "https://github.com/acme/widget/deployments", created_at: "2020-11-23T22:00:40Z", updated_at: "2020-11-23T22:00:40Z" }],
    user: { login, id: 1, node_id: "MDQ6VXNlcjE=", avatar_url: "https://github.com/images/error/octocat_happy.gif", gravatar_id: "", url: `https://api.github.com/users/${login}`, html_url: `https://github.com/${login}`, type: "User", site_admin: false },
  });

  before(async function () {
    github = createServer((req, res) => {
      const ok = req.headers.authorization === `Bearer ${GITHUB_TOKEN}` && req.url === "/repos/acme/widget/actions/runs/42/approvals";
      res.writeHead(ok ? 200 : 404, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify(ok ? reviews : { message: "Not Found", documentation_url: "https://docs.github.com/rest" }));
    });
    await new Promise<void>((resolve) => github.listen(0, "127.0.0.1", resolve));
    githubEnv = { GITHUB_API_URL: `http://127.0.0.1:${(github.address() as AddressInfo).port}`, GITHUB_REPOSITORY: "acme/widget", GITHUB_RUN_ID: "42", GITHUB_TOKEN };

    e2e = await startE2E();
    for (const stack of [DEV, STAGING, PRODUCTION]) {
      const current = await (await e2e.cloud.stack(stack)).getAllConfig();
      const rollout = { ...(JSON.parse(current["picasso-widget:rollout"].value) as object), steps: [50, 100], bakeSeconds: 0, probesPerStep: 100, minSamples: 20 };
      const config: ConfigMap = { "picasso-widget:rollout": { value: JSON.stringify(rollout), secret: false } };
      if (stack === PRODUCTION) config["picasso-widget:approvals"] = { value: JSON.stringify(GATE), secret: false };
      await (await e2e.cloud.stack(stack)).setAllConfig(config);
      await (await e2e.cloud.stack(stack)).up({ message: "test: fast rollouts and the production gate" });
    }
    // 1.0.0 goes dev → staging → production (each stack's first release); 2.0.0 then reaches dev's idle slot.
    await deploy(DEV, path.join(RELEASES_DIR, "1.0.0"), "1.0.0");
    await promote({ from: DEV, to: STAGING, approve: [], cloud: e2e.cloud }, quiet());
    await promote({ from: STAGING, to: PRODUCTION, approve: ALL_THREE, cloud: e2e.cloud }, quiet());
    await deploy(DEV, path.join(RELEASES_DIR, "2.0.0"), "2.0.0");
  });

  after(async () => {
    await e2e?.close();
    await new Promise<void>((resolve) => (github ? github.close(() => resolve()) : resolve()));
  });

  it("promotes dev's release into staging's idle slot through staging's own steps, bytes proven against the manifest", async function () {
    const res = await e2e.cli(["promote", "--from", DEV, "--to", STAGING, "--json"]);
    expectExit(res, 0);
    const report = parseJson<DeployReport>(res.stdout);
    expect(report).to.include({ result: "succeeded", stack: STAGING, release: "2.0.0", slot: "green" });
    expect(report.steps.map((s) => [s.weight, s.verdict])).to.deep.equal([
      [50, "passed"],
      [100, "passed"],
    ]);
    expect(res.stderr).to.match(/green holds 2\.0\.0 byte for byte: \d+ files re-read and matched to the manifest's SHA-256/);
    const [record] = (await auditOf(STAGING)).slice(-1);
    expect(record).to.deep.include({ action: "promote", stack: STAGING, release: "2.0.0", result: "succeeded" });
    expect(record.details?.promotedFrom).to.deep.equal({ stack: DEV, slot: "green", release: "2.0.0" });
  });

  it("refuses promotion into production when one role's approval is missing, naming the role, and changes nothing", async function () {
    const before = await historyLength(PRODUCTION);
    const res = await e2e.cli(["promote", "--from", STAGING, "--to", PRODUCTION, ...approveArgs(["tech-lead=alice-lead", "ops-lead=omar-ops"])]);
    expectExit(res, 2);
    expect(res.stderr).to.match(/stack local-production: approval missing for role product-owner \(held by pat-product\)/);
    expect(await historyLength(PRODUCTION)).to.equal(before);
    expect((await auditOf(PRODUCTION)).map((r) => r.action)).to.deep.equal(["approval", "promote"]);
  });

  it("refuses promotion into production when an approver holds no listed role, and changes nothing", async function () {
    const before = await historyLength(PRODUCTION);
    const res = await e2e.cli(["promote", "--from", STAGING, "--to", PRODUCTION, ...approveArgs(["tech-lead=alice-lead", "ops-lead=omar-ops", "product-owner=mallory"])]);
    expectExit(res, 2);
    expect(res.stderr).to.match(/--approve = "product-owner=mallory": mallory does not hold role product-owner \(holders: pat-product\)/);
    expect(await historyLength(PRODUCTION)).to.equal(before);
  });

  it("refuses when a reviewer holds no listed role, naming the reviewer", async function () {
    reviews = [review("alice-lead", "local-production-tech-lead"), review("omar-ops", "local-production-ops-lead"), review("pat-product", "local-production-product-owner"), review("mallory", "local-production")];
    const before = await historyLength(PRODUCTION);
    const err = await promote({ from: STAGING, to: PRODUCTION, approve: [], env: githubEnv, cloud: e2e.cloud }, quiet()).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.name).to.equal("UsageError");
    expect(err?.message).to.match(/^stack local-production: approval by mallory refused: holds no role/);
    expect(await historyLength(PRODUCTION)).to.equal(before);
  });

  it("accepts all three roles, records the approvers, and production then serves exactly the bytes staging serves", async function () {
    reviews = [review("alice-lead", "local-production-tech-lead"), review("omar-ops", "local-production-ops-lead"), review("pat-product", "local-production-product-owner")];
    const report = await promote({ from: STAGING, to: PRODUCTION, approve: [], env: githubEnv, cloud: e2e.cloud }, quiet());
    expect(report).to.include({ result: "succeeded", release: "2.0.0", slot: "green" });

    const [approval, promotion] = (await auditOf(PRODUCTION)).slice(-2);
    expect(approval).to.deep.include({ action: "approval", stack: PRODUCTION, release: "2.0.0", result: "approved" });
    expect((approval.details?.approvers as { login: string; roles: string[]; source: string }[]).map((a) => [a.login, a.roles, a.source])).to.deep.equal([
      ["alice-lead", ["tech-lead"], "GitHub environment local-production-tech-lead (acme/widget run 42)"],
      ["omar-ops", ["ops-lead"], "GitHub environment local-production-ops-lead (acme/widget run 42)"],
      ["pat-product", ["product-owner"], "GitHub environment local-production-product-owner (acme/widget run 42)"],
    ]);
    expect(promotion).to.deep.include({ action: "promote", result: "succeeded", release: "2.0.0" });
    expect(promotion.details?.promotedFrom).to.deep.equal({ stack: STAGING, slot: "green", release: "2.0.0" });

    const manifest = await manifestOn(STAGING, "2.0.0");
    expect(await manifestOn(PRODUCTION, "2.0.0")).to.deep.equal(manifest);
    const [fromStaging, fromProduction] = [await served(STAGING, manifest), await served(PRODUCTION, manifest)];
    const sha = (r: ProbeResponse) => createHash("sha256").update(r.body).digest("hex");
    Object.values(manifest.files).forEach((entry, i) => {
      for (const res of [fromStaging[i], fromProduction[i]]) expect(res).to.include({ status: 200, slot: "green", release: "2.0.0" });
      expect(sha(fromProduction[i])).to.equal(sha(fromStaging[i]));
      expect(sha(fromProduction[i])).to.equal(entry.sha256);
    });
  });
  it("records the first promotion into production with the command-line approvers, marked as such", async function () {
    const approval = (await auditOf(PRODUCTION)).find((r) => r.action === "approval" && r.release === "1.0.0");
    expect((approval?.details?.approvers as { login: string; source: string }[]).map((a) => [a.login, a.source])).to.deep.equal([
      ["alice-lead", COMMAND_LINE_SOURCE],
      ["omar-ops", COMMAND_LINE_SOURCE],
      ["pat-product", COMMAND_LINE_SOURCE],
    ]);
  });

  it("refuses (exit 2, nothing changed) to promote from a stack whose last rollout was rolled back", async function () {
    // Every request to dev's idle slot fails: the candidate fails its preview checks and the rollout reverts.
    e2e.cloud.setFault(DEV, "blue", { errorRate: 1, latencyMs: 0 });
    try {
      const failed = await deploy(DEV, e2e.release("3.0.0"), "3.0.0").then(
        () => undefined,
        (err: Error) => err,
      );
      expect(failed).to.be.instanceOf(RolledBackError);
    } finally {
      e2e.cloud.clearFaults(DEV);
    }
    const before = await historyLength(STAGING);
    const res = await e2e.cli(["promote", "--from", DEV, "--to", STAGING]);
    expectExit(res, 2);
    expect(res.stderr).to.match(/--from = "local-dev": expected a stack whose last rollout succeeded; the rollout of 3\.0\.0 was rolled back/);
    expect(await historyLength(STAGING)).to.equal(before);
  });
});
