// The local cloud across processes: a foreground `bluegreen local up` serves; other processes (this test, the
// `bluegreen local fault` CLI) connect to it through its state folder. And a SIGKILL in the middle of an update
// leaves the state either before or after that update.
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { cloudFile, startLocalCloud } from "../../automation/local/cloud";
import { REPO_ROOT, StackFiles } from "../../automation/local/state";
import { buildManifest, uploadRelease } from "../../automation/releases";
import { BOTH_RELEASES, RELEASE_DIR, RELEASES } from "./support";

const CLI = path.join(REPO_ROOT, "bin", "bluegreen.js");

function cli(args: string[], stateDir: string): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env: { ...process.env, BLUEGREEN_STATE_DIR: stateDir }, stdio: ["ignore", "pipe", "pipe"] });
}

function exited(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/** fetch() may not set Host (a forbidden header), so plain http. */
/** The health path: routed by weight to a slot's origin (an entry point such as / answers a redirect at the edge). */
function status(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => get(new URL("/version.json", url), { headers: { host } }, (res) => resolve(res.resume().statusCode ?? 0)).on("error", reject));
}

describe("local cloud: across processes", function () {
  let stateDir: string;
  beforeEach(() => (stateDir = mkdtempSync(path.join(tmpdir(), "bluegreen-proc-"))));
  afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

  it("lets other processes deploy to and inject faults into a running `local up`, which stops cleanly on SIGTERM", async () => {
    const up = cli(["local", "up", "--port", "0"], stateDir);
    const done = exited(up);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        up.stdout!.on("data", (c: string) => {
          out += c;
          const m = /edge (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) resolve(m[1]);
        });
        up.on("close", () => reject(new Error(`local up exited early: ${out}`)));
      });
      const cloud = await startLocalCloud({ stateDir });
      expect(cloud.connected).to.equal(true);
      expect(cloud.url).to.equal(url);
      const stack = await cloud.stack("local");
      await stack.up({ message: "through the running cloud" });
      // Nothing is uploaded: the router's 503 for a slot without a release comes from the other process's edge.
      expect(await status(url, cloud.host("local"))).to.equal(503);
      // Upload to the running cloud's S3 and deploy: its edge serves the release.
      const bucket = ((await stack.outputs()).bucketNames.value as Record<string, string>).blue;
      const { manifest, bodies } = await buildManifest(path.join(RELEASE_DIR, RELEASES.blue), RELEASES.blue);
      await uploadRelease(cloud.s3, { bucket, slot: "blue" }, manifest, bodies);
      await stack.setAllConfig({ "picasso-widget:slots": { value: JSON.stringify(BOTH_RELEASES.slots) } });
      await stack.up({ message: "1.0.0 on blue" });
      expect(await status(url, cloud.host("local"))).to.equal(200);
      const fault = await exited(cli(["local", "fault", "--slot", "blue", "--latency-ms", "200"], stateDir));
      expect(fault.code, fault.stderr).to.equal(0);
      expect(fault.stdout).to.contain("local: blue: error rate 0, latency 200 ms");
      const started = Date.now();
      await status(url, cloud.host("local"));
      expect(Date.now() - started, "the running edge obeys the fault set by the CLI").to.be.at.least(200);
      await cloud.close();
    } finally {
      up.kill("SIGTERM");
    }
    const stopped = await done;
    expect(stopped.code).to.equal(0);
    expect(stopped.stdout).to.match(/\nlocal cloud: stopped on SIGTERM; state kept in \S+\n$/);
    expect(existsSync(cloudFile(stateDir))).to.equal(false);
  });

  it("leaves a stack's applied state and history either before or after an update killed with SIGKILL", async () => {
    const script = `
      const { startLocalCloud } = require(${JSON.stringify(path.join(REPO_ROOT, "automation", "local", "cloud.ts"))});
      startLocalCloud({ stateDir: ${JSON.stringify(stateDir)} }).then(async (cloud) => {
        const stack = await cloud.stack("local");
        for (let i = 1; ; i++) { await stack.up({ message: "up " + i }); process.stdout.write("up " + i + "\\n"); }
      });`;
    const child = spawn(process.execPath, ["--require", require.resolve("tsx/cjs"), "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    // Kill it at a random moment after its first update, most likely in the middle of a later one.
    await new Promise<void>((resolve) => child.stdout.on("data", (c: Buffer) => (out += c.toString()).includes("up 1") && resolve()));
    await new Promise((r) => setTimeout(r, 200 + Math.random() * 2500));
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
    const files = new StackFiles(stateDir, "local");
    const history = files.readHistory();
    const applied = files.readApplied();
    const lastSucceeded = history.filter((h) => h.result === "succeeded").at(-1);
    const finished = out.split("\n").filter((l) => l.startsWith("up ")).length;
    // Every update reported done is recorded, at most one more (killed after its commit); versions have no gaps.
    expect(history.length).to.be.oneOf([finished, finished + 1]);
    expect(history.map((h) => h.version)).to.deep.equal(history.map((_, i) => i + 1));
    // What the edge serves is exactly what the last recorded success applied.
    expect(applied?.version).to.equal(lastSucceeded?.version);
  });
});
