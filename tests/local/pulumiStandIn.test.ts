// The Pulumi CLI stand-in against the shapes the automation SDK parses. Each case runs the stand-in executable the
// way the SDK does (argv, working folder, environment) and names the pulumi/pulumi source it follows.
import { ConcurrentUpdateError, StackAlreadyExistsError, StackNotFoundError, type Stack } from "@pulumi/pulumi/automation";
import { expect } from "chai";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { STAND_IN_ROOT, startLocalCloud, type LocalCloud } from "../../automation/local/cloud";
import { stackDir } from "../../automation/local/state";

const PULUMI = path.join(STAND_IN_ROOT, "bin", "pulumi");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe("the Pulumi CLI stand-in: what the automation SDK runs and parses", function () {
  this.timeout(120_000);
  let cloud: LocalCloud;
  let stateDir: string;
  let stack: Stack;

  const pulumi = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(PULUMI, args, { cwd: cloud.workDir, env: { ...process.env, ...cloud.pulumiEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });

  before(async () => {
    stateDir = mkdtempSync(path.join(tmpdir(), "bluegreen-standin-"));
    cloud = await startLocalCloud({ stateDir });
    stack = await cloud.stack("local");
    for (let i = 0; i < 12; i++) await stack.up({ message: `update ${i + 1}` });
  });

  after(async () => {
    await cloud?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("answers `pulumi version` with a version the SDK accepts (sdk/nodejs/automation/cmd.ts parseAndValidatePulumiVersion)", async () => {
    const res = await pulumi(["version"]);
    expect(res.code).to.equal(0);
    expect(res.stdout.trim()).to.match(/^v3\.\d+\.\d+$/);
  });

  it("prints history as updateInfoJSON, newest first, 10 per page by default (pkg/cmd/pulumi/stack/stack_history.go)", async () => {
    const res = await pulumi(["stack", "history", "--json", "--show-secrets", "--stack", "local", "--non-interactive"]);
    expect(res.code, res.stderr).to.equal(0);
    const updates = JSON.parse(res.stdout) as Record<string, unknown>[];
    expect(updates).to.have.length(10);
    expect(updates.map((u) => u.version)).to.deep.equal([12, 11, 10, 9, 8, 7, 6, 5, 4, 3]);
    for (const u of updates) {
      expect(Object.keys(u).sort()).to.deep.equal(["config", "endTime", "environment", "kind", "message", "resourceChanges", "result", "startTime", "version"]);
      expect(u.startTime).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const value = (u.config as Record<string, Record<string, unknown>>)["picasso-widget:rollout"];
      expect(value.secret).to.equal(false);
      expect(JSON.parse(value.value as string)).to.deep.equal(value.objectValue);
    }
    const page2 = JSON.parse((await pulumi(["stack", "history", "--json", "--page-size", "5", "--page", "2", "--stack", "local"])).stdout) as { version: number }[];
    expect(page2.map((u) => u.version)).to.deep.equal([7, 6, 5, 4, 3]);
  });

  it("gives an update in progress result in-progress and no endTime, answers a second update with the 409 the SDK classifies, and `cancel` with none running fails (stack_history.go, cancel.go)", async () => {
    cloud.delayUps("local", 4000);
    const running = stack.up({ message: "slow" }).catch((err: unknown) => err);
    try {
      let open: Record<string, unknown> | undefined;
      for (let i = 0; i < 100 && open === undefined; i++) {
        const [newest] = await stack.history(1, 1);
        if (newest.result === "in-progress") open = newest as unknown as Record<string, unknown>;
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(open, "an update in progress").to.not.equal(undefined);
      expect(open).to.not.have.property("endTime");
      expect(open).to.not.have.property("resourceChanges");
      // A second update while one runs: the service's 409, which the SDK classifies (sdk/nodejs/automation/errors.ts).
      const second = await stack.up({ message: "second" }).catch((err: unknown) => err);
      expect(second).to.be.instanceOf(ConcurrentUpdateError);
    } finally {
      cloud.delayUps("local", 0);
    }
    expect(await running).to.not.be.instanceOf(Error);
    const cancel = await pulumi(["cancel", "--yes", "--stack", "local"]);
    expect(cancel.code).to.equal(255);
    expect(cancel.stderr).to.contain("has no update in progress");
  });

  it("prints ERROR_UNABLE_TO_DECRYPT for a secret of another secrets provider in history (stack_history.go errorDecryptingValue)", async () => {
    // An update recorded before a secrets-provider change: its ciphertext is not the stand-in's.
    const file = path.join(stackDir(stateDir, "local"), "history.json");
    const history = JSON.parse(readFileSync(file, "utf8")) as { config: Record<string, unknown> }[];
    history[0].config["picasso-widget:previewToken"] = { secure: "v1:c29tZSBvdGhlciBwcm92aWRlcg==", secret: true };
    writeFileSync(file, JSON.stringify(history));
    const oldest = (JSON.parse((await pulumi(["stack", "history", "--json", "--show-secrets", "--page-size", "0", "--stack", "local"])).stdout) as { config: Record<string, unknown> }[]).at(-1)!;
    expect(oldest.config["picasso-widget:previewToken"]).to.deep.equal({ value: "ERROR_UNABLE_TO_DECRYPT", secret: true });
  });

  it("lists config as key → { value, secret, objectValue } and hides secrets without --show-secrets (pkg/cmd/pulumi/config/config.go)", async () => {
    await stack.setAllConfig({ "picasso-widget:webhooks": { value: "[]", secret: false }, "picasso-widget:note": { value: "s3cr3t", secret: true } });
    const shown = JSON.parse((await pulumi(["config", "--show-secrets", "--json", "--stack", "local"])).stdout) as Record<string, Record<string, unknown>>;
    const hidden = JSON.parse((await pulumi(["config", "--json", "--stack", "local"])).stdout) as Record<string, Record<string, unknown>>;
    expect(shown["picasso-widget:note"]).to.deep.equal({ value: "s3cr3t", secret: true });
    expect(hidden["picasso-widget:note"]).to.deep.equal({ value: "[secret]", secret: true });
    expect(shown["picasso-widget:webhooks"]).to.deep.equal({ value: "[]", secret: false });
    expect(shown["picasso-widget:weights"]).to.deep.include({ objectValue: { blue: 100, green: 0 }, secret: false });
    // The stack file holds the secret as `secure:`, never in plain text.
    const file = readFileSync(path.join(cloud.workDir, "stacks", "Pulumi.local.yaml"), "utf8");
    expect(file).to.match(/picasso-widget:note:\n\s+secure: /);
    expect(file).to.not.contain("s3cr3t");
    await stack.removeConfig("picasso-widget:note");
    await stack.removeConfig("picasso-widget:webhooks");
  });

  it("prints stack outputs as one flat JSON map (pkg/cmd/pulumi/stack/stack_output.go)", async () => {
    const res = await pulumi(["stack", "output", "--json", "--show-secrets", "--stack", "local"]);
    const outputs = JSON.parse(res.stdout) as Record<string, unknown>;
    expect(outputs).to.include.keys("bucketNames", "distributionDomain", "edgeUrl", "auditBucket");
    expect(outputs.edgeUrl).to.equal(cloud.url);
  });

  it("fails as the CLI does for a missing stack and a second `stack init` (stack_select.go, stack_init.go; exit 255)", async () => {
    const missing = await pulumi(["stack", "select", "--stack", "nope"]);
    expect(missing.code).to.equal(255);
    expect(missing.stderr).to.equal("error: no stack named 'nope' found\n");
    const again = await pulumi(["stack", "init", "local"]);
    expect(again.code).to.equal(255);
    expect(again.stderr).to.equal("error: stack 'local' already exists\n");
    // The SDK turns those texts into its typed errors.
    expect(await cloud.stack("nope").catch((err: unknown) => err)).to.be.instanceOf(StackNotFoundError);
    const created = await stack.workspace.createStack("local").catch((err: unknown) => err);
    expect(created).to.be.instanceOf(StackAlreadyExistsError);
  });

  it("accepts fully qualified stack names and refuses another project's (https://www.pulumi.com/docs/iac/concepts/stacks/#stack-names)", async () => {
    expect((await pulumi(["stack", "select", "--stack", "organization/picasso-widget/local"])).code).to.equal(0);
    const other = await pulumi(["stack", "select", "--stack", "organization/other/local"]);
    expect(other.code).to.equal(255);
    expect(other.stderr).to.contain("doesn't match Pulumi.yaml");
  });

  it("answers the same through its Node.js client, which runs where there is no curl", async () => {
    const viaNode = (args: string[]): Promise<Run> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [path.join(STAND_IN_ROOT, "bin", "pulumi.js"), ...args], { cwd: cloud.workDir, env: { ...process.env, ...cloud.pulumiEnv() }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("close", (code) => resolve({ code, stdout, stderr }));
      });
    const args = ["stack", "history", "--json", "--stack", "local"];
    const [node, shell] = [await viaNode(args), await pulumi(args)];
    expect(node).to.deep.equal(shell);
    expect(await viaNode(["stack", "select", "--stack", "nope"])).to.deep.equal({ code: 255, stdout: "", stderr: "error: no stack named 'nope' found\n" });
  });

  it("refuses a flag it does not emulate instead of ignoring it", async () => {
    const res = await pulumi(["up", "--yes", "--skip-preview", "--refresh", "--stack", "local"]);
    expect(res.code).to.equal(255);
    expect(res.stderr).to.contain("does not support --refresh");
  });

  it("says how to start the local cloud when none serves the backend", async () => {
    const res = await pulumi(["stack", "select", "--stack", "local"], { BLUEGREEN_ENGINE_URL: "", PULUMI_BACKEND_URL: `file://${mkdtempSync(path.join(tmpdir(), "empty-backend-"))}` });
    expect(res.code).to.equal(255);
    expect(res.stderr).to.contain("npx bluegreen local up");
  });
});
