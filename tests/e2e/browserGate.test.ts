// The real-browser gate inside `bluegreen deploy` on the local cloud: a headless Chromium (the machine's, or the one
// @sparticuz/chromium ships) loads the candidate through the preview route before any viewer traffic. Broken releases
// are generated here, never shipped as examples a viewer could be served.
import { expect } from "chai";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { runBrowserGate } from "../../automation/browserGate";
import { deploy as deployInProcess } from "../../automation/deploy";
import { exitCodeOf } from "../../automation/errors";
import { Reporter } from "../../automation/output";
import type { ConfigMap } from "../../automation/port";
import type { DeployReport } from "../../automation/rollout";
import { expectConfigRestored, parseJson, RELEASES_DIR, startE2E, type E2E } from "./support";


describe("the real-browser gate on the local cloud", function () {
  this.timeout(120_000);
  let e2e: E2E;


  /** The same deploy as the CLI's, in this process (its program worker stays warm); one step, no bake. */
  function deploy(artifact: string, release: string): Promise<{ code: number; report: DeployReport; stderr: string }> {
    return deployAt(artifact, release, [100]);
  }

  async function deployAt(artifact: string, release: string, steps: number[]): Promise<{ code: number; report: DeployReport; stderr: string }> {
    let stdout = "";
    let stderr = "";
    const reporter = new Reporter({ json: true, stdout: { write: (t: string) => ((stdout += t), true) }, stderr: { write: (t: string) => ((stderr += t), true) }, env: { CI: "true" } });
    let code = 0;
    try {
      await deployInProcess({ stack: "local", artifact, release, steps, bakeMs: 0, json: true, dryRun: false }, reporter, { cloud: e2e.cloud });
    } catch (err) {
      code = exitCodeOf(err);
      stderr += `bluegreen: ${(err as Error).message}\n`;
    }
    return { code, report: parseJson<DeployReport>(stdout), stderr };
  }

  /** A release whose entry script is `script` (fingerprinted by content, as the example's), plus `padding` bytes. */
  function generated(id: string, script: string): string {
    const dir = e2e.release(id);
    const assets = path.join(dir, "assets");
    for (const f of readdirSync(assets)) if (f.endsWith(".js")) rmSync(path.join(assets, f));
    const name = `widget.${createHash("sha256").update(script).digest("hex").slice(0, 10)}.js`;
    writeFileSync(path.join(assets, name), script);
    const index = path.join(dir, "index.html");
    writeFileSync(index, readFileSync(index, "utf8").replace(/assets\/widget\.[0-9a-f]+\.js/, `assets/${name}`));
    return dir;
  }

  /** Renders like the example, after `busyMs` of main-thread work, from a bundle of about `kb` kilobytes. */
  function bundle(busyMs: number, kb: number, after = ""): string {
    const pad = `/*${"x".repeat(kb * 1024)}*/`;
    return `${pad}
(function () {
  var end = performance.now() + ${busyMs};
  while (performance.now() < end) {}
  var nodes = document.querySelectorAll("[data-picasso-widget]");
  for (var i = 0; i < nodes.length; i++) { nodes[i].textContent = "Picasso widget"; nodes[i].className = "picasso-widget"; }
  ${after}
})();
`;
  }

  before(async function () {
    e2e = await startE2E();
    await e2e.tune({ rollout: { bakeSeconds: 0, probesPerStep: 40, minSamples: 10 }, verification: { browserGate: { loads: 3, timeoutMs: 5_000 } } });
    const first = await deploy(path.join(RELEASES_DIR, "1.0.0"), "1.0.0");
    expect(first.code, first.stderr).to.equal(0);
  });

  after(async () => {
    await e2e?.close();
  });

  it("passes a healthy release that renders, with both slots' medians and screenshots next to the JSON report", async () => {
    const { code, report, stderr } = await deploy(path.join(RELEASES_DIR, "2.0.0"), "2.0.0");
    expect(code, stderr).to.equal(0);
    const gate = report.browserGate!;
    expect(gate.verdict, JSON.stringify(gate.findings)).to.equal("passed");
    expect(gate.medians.green?.loads).to.equal(3);
    expect(gate.medians.blue?.loads).to.equal(3);
    expect(gate.browser?.version).to.match(/^\d+\./);
    // The stack's embedding config allows framing (frame-ancestors *): the host page on another origin frames it.
    expect(gate.embedding).to.equal("iframe");
    expect(Object.keys(gate.screenshots).sort()).to.deep.equal(["blue", "green"]);
    for (const file of [gate.report, ...Object.values(gate.screenshots)]) {
      expect(existsSync(file!), file).to.equal(true);
      expect(path.dirname(file!)).to.equal(path.dirname(gate.report));
    }
    expect(readFileSync(gate.screenshots.green!).subarray(1, 4).toString()).to.equal("PNG");
  });

  it("reverts a release whose script throws after rendering: exit 1 before any viewer traffic, config as before", async () => {
    const before: ConfigMap = await e2e.config();
    const artifact = generated("3.0.0", bundle(0, 1, `setTimeout(function () { throw new Error("late failure after render"); }, 100);`));
    const { code, report, stderr } = await deploy(artifact, "3.0.0");
    expect(code, stderr).to.equal(1);
    expect(report.result).to.equal("rolled-back");
    expect(report.rollback?.metric).to.equal("browser");
    expect(report.rollback?.step).to.equal(null);
    expect(report.steps.filter((s) => s.weight > 0)).to.deep.equal([]);
    await expectConfigRestored(e2e, before);
    const gate = report.browserGate!;
    expect(gate.findings.map((f) => [f.kind, f.slot])).to.deep.include(["uncaught-error", "blue"]);
    expect(report.rollback?.reason).to.match(/blue: uncaught error in 3 of 3 loads: .*late failure after render/);
    expect(Object.values(gate.screenshots).filter((f) => existsSync(f!))).to.have.length(2);
    expect(parseJson<{ verdict: string }>(readFileSync(gate.report, "utf8")).verdict).to.equal("failed");
  });

  it("reverts a release three times heavier and slower than the stable one, exit 1 before any viewer traffic", async () => {
    // A stable release that already does some work, so that 3x is well above the noise floors; deployed without the
    // gate, since against 2.0.0 it is itself a regression.
    await e2e.tune({ verification: { browserGate: { enabled: false } } });
    const baseline = await deploy(generated("4.0.0", bundle(100, 60)), "4.0.0");
    expect(baseline.code, baseline.stderr).to.equal(0);
    await e2e.tune({ verification: { browserGate: { loads: 3, timeoutMs: 5_000 } } });
    const before: ConfigMap = await e2e.config();
    const { code, report, stderr } = await deploy(generated("5.0.0", bundle(300, 180)), "5.0.0");
    expect(code, stderr).to.equal(1);
    expect(report.rollback?.metric).to.equal("browser");
    expect(report.rollback?.step).to.equal(null);
    expect(report.steps.filter((s) => s.weight > 0)).to.deep.equal([]);
    await expectConfigRestored(e2e, before);
    const gate = report.browserGate!;
    const regressed = gate.findings.filter((f) => f.kind === "performance").map((f) => f.message.split(" against")[0].replace(/ [\d.]+( B|ms)$/, ""));
    expect(regressed).to.include.members(["green: render time", "green: transferred bytes", "green: long tasks"]);
    expect(Object.keys(gate.screenshots).sort()).to.deep.equal(["blue", "green"]);
    for (const file of Object.values(gate.screenshots)) expect(existsSync(file!), file).to.equal(true);
    expect(parseJson<{ screenshots: Record<string, string> }>(readFileSync(gate.report, "utf8")).screenshots).to.deep.equal(gate.screenshots);
  });

  it("runs the gate again at each step when verification.browserGate.everyStep is set: a release that breaks only after its first loads reverts at 50 percent", async () => {
    // The release's page loads a script from another server first; from its 4th request on (after the 3 loads of the
    // gate before any viewer traffic) it flags the page, and the widget's own script then throws after rendering.
    let requests = 0;
    const flagger = createServer((_req, res) => {
      requests++;
      res.writeHead(200, { "content-type": "text/javascript" }).end(requests > 3 ? "window.__late = true;" : "");
    });
    await new Promise<void>((r) => flagger.listen(0, "127.0.0.1", r));
    try {
      const artifact = generated("6.0.0", bundle(0, 1, `setTimeout(function () { if (window.__late) throw new Error("breaks from the first step on"); }, 50);`));
      const index = path.join(artifact, "index.html");
      const flaggerUrl = `http://127.0.0.1:${(flagger.address() as AddressInfo).port}/flag.js`;
      writeFileSync(index, readFileSync(index, "utf8").replace("<script ", `<script src="${flaggerUrl}"></script>\n    <script `));
      await e2e.tune({ verification: { browserGate: { loads: 3, timeoutMs: 5_000, everyStep: true } } });
      const before: ConfigMap = await e2e.config();
      const { code, report, stderr } = await deployAt(artifact, "6.0.0", [50, 100]);
      expect(code, stderr).to.equal(1);
      expect(report.browserGate?.verdict, "the gate before any viewer traffic").to.equal("passed");
      expect(report.steps.map((s) => [s.weight, s.verdict, s.browserGate?.verdict])).to.deep.equal([[50, "passed", "failed"]]);
      expect(report.rollback).to.deep.include({ metric: "browser", step: 0, weight: 50 });
      expect(report.rollback?.reason).to.match(/uncaught error in 3 of 3 loads: .*breaks from the first step on/);
      expect(Object.keys(report.steps[0].browserGate!.screenshots).length).to.be.above(0);
      await expectConfigRestored(e2e, before);
    } finally {
      flagger.close();
      await e2e.tune({ verification: { browserGate: { everyStep: false } } });
    }
  });

  it("frames the widget in the host page on another origin when its responses allow it, at the stack's Host", async () => {
    // A stand-in edge that sends no framing headers at all, at the stack's Host: the iframe path, with errors thrown
    // inside the cross-origin frame caught too.
    const seen: string[] = [];
    const edge = createServer((req, res) => {
      const slot = String(req.headers["x-bluegreen-preview"] ?? "").split(":")[1];
      seen.push(`${req.headers.host?.replace(/:\d+$/, "")} ${req.url} ${slot}`);
      if (req.url === "/") return res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html><div data-picasso-widget>widget</div><script src="/w.js"></script>`);
      const late = slot === "blue" ? `setTimeout(function () { throw new Error("late in the frame"); }, 50);` : "";
      res.writeHead(200, { "content-type": "text/javascript" }).end(`document.querySelector("[data-picasso-widget]").className = "picasso-widget"; ${late}`);
    });
    await new Promise<void>((r) => edge.listen(0, "127.0.0.1", r));
    const out = path.join(tmpdir(), `bluegreen-gate-frame-${process.pid}`);
    try {
      const r = await runBrowserGate({ edgeUrl: `http://127.0.0.1:${(edge.address() as AddressInfo).port}`, host: "local.bluegreen.localhost", previewToken: "t", candidate: "blue", stable: "green", selector: ".picasso-widget", loads: 1, timeoutMs: 3_000, outDir: out });
      expect(r.embedding).to.equal("iframe");
      expect(r.findings.map((f) => f.message)).to.deep.equal(["blue: uncaught error in 1 of 1 loads: late in the frame"]);
      expect(r.medians.green?.loads).to.equal(1);
      expect(seen).to.include.members(["local.bluegreen.localhost /w.js blue", "local.bluegreen.localhost /w.js green"]);
    } finally {
      edge.close();
      rmSync(out, { recursive: true, force: true });
    }
  });

  describe("bad inputs end as findings, never a hang", () => {
    const out = path.join(tmpdir(), `bluegreen-gate-bad-${process.pid}`);
    after(() => rmSync(out, { recursive: true, force: true }));

    it("reports no browser found", async () => {
      const saved = process.env.BLUEGREEN_CHROMIUM;
      process.env.BLUEGREEN_CHROMIUM = "/nonexistent/chromium";
      try {
        const r = await runBrowserGate({ edgeUrl: e2e.cloud.url, host: e2e.cloud.host("local"), previewToken: "t", candidate: "blue", stable: null, selector: "x", loads: 1, timeoutMs: 2_000, outDir: out });
        expect(r.verdict).to.equal("failed");
        expect(r.findings[0].message).to.equal("no browser to run the gate: BLUEGREEN_CHROMIUM=/nonexistent/chromium does not exist");
      } finally {
        if (saved === undefined) delete process.env.BLUEGREEN_CHROMIUM;
        else process.env.BLUEGREEN_CHROMIUM = saved;
      }
    });

    it("reports a widget origin that does not load and a selector that never appears, within the timeout", async () => {
      // An origin that accepts connections and never answers, and a live slot without the selector.
      const silent = createServer(() => undefined);
      await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
      try {
        const t0 = Date.now();
        const hung = await runBrowserGate({ edgeUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, previewToken: "t", candidate: "blue", stable: null, selector: ".picasso-widget", loads: 1, timeoutMs: 1_000, outDir: out });
        expect(hung.verdict).to.equal("failed");
        expect(hung.findings.map((f) => f.kind)).to.deep.equal(["host-page"]);
        const missing = await runBrowserGate({ edgeUrl: e2e.cloud.url, host: e2e.cloud.host("local"), previewToken: "local-preview-token-0123456789", candidate: "blue", stable: null, selector: "#never-rendered", loads: 1, timeoutMs: 1_000, outDir: out });
        expect(missing.findings.map((f) => f.message)).to.deep.equal(["blue: the widget did not render in 1 of 1 loads"]);
        expect(Date.now() - t0).to.be.below(20_000);
      } finally {
        silent.closeAllConnections();
        silent.close();
      }
    });
  });
});
