// The browser gate's verdict as a pure function of what the loads observed: no browser, no network.
import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { DEFAULT_THRESHOLDS, findBrowser, framingForbidden, judgeBrowserRun, median, type LoadMetrics, type LoadObservation, type SlotRun } from "../../automation/browserGate";
import { ConfigError, parseStackConfig } from "../../infra/config";

const METRICS: LoadMetrics = { loadMs: 40, renderMs: 30, serverWaitMs: 10, bytes: 2_000, longTaskMs: 0 };

function load(over: Partial<LoadObservation> = {}, metrics: Partial<LoadMetrics> = {}): LoadObservation {
  return { errors: [], consoleErrors: [], failedRequests: [], rendered: true, metrics: { ...METRICS, ...metrics }, ...over };
}

function run(slot: "blue" | "green", ...loads: LoadObservation[]): SlotRun {
  return { slot, loads };
}

const healthy = (slot: "blue" | "green") => run(slot, load(), load(), load());

describe("browser gate verdict", () => {
  it("passes a candidate that renders cleanly and performs like the stable slot", () => {
    const j = judgeBrowserRun(healthy("blue"), healthy("green"));
    expect(j.verdict).to.equal("passed");
    expect(j.findings).to.deep.equal([]);
    expect(j.medians.blue).to.deep.equal({ loads: 3, ...METRICS });
  });

  it("fails on an uncaught error or unhandled rejection in any one load, naming it", () => {
    const j = judgeBrowserRun(run("blue", load(), load({ errors: ["boom after render"] }), load()), healthy("green"));
    expect(j.verdict).to.equal("failed");
    expect(j.findings).to.deep.equal([{ kind: "uncaught-error", slot: "blue", message: "blue: uncaught error in 1 of 3 loads: boom after render" }]);
  });

  it("fails on a console error", () => {
    const j = judgeBrowserRun(run("blue", load({ consoleErrors: ["widget: config missing"] })), null);
    expect(j.findings.map((f) => f.kind)).to.deep.equal(["console-error"]);
  });

  it("fails on a widget asset answered with a 4xx, with its path and status", () => {
    const j = judgeBrowserRun(run("blue", load({ failedRequests: [{ url: "/assets/gone.js", status: 403, reason: "Forbidden" }] })), null);
    expect(j.findings[0].message).to.equal("blue: request for /assets/gone.js failed (status 403) in 1 of 1 loads");
  });

  it("fails when the selector never rendered, and when the page did not load at all", () => {
    const j = judgeBrowserRun(run("blue", load({ rendered: false }), load({ rendered: false, metrics: null, loadError: "page.goto: Timeout 5000ms exceeded" })), null);
    expect(j.findings.map((f) => f.kind)).to.deep.equal(["host-page", "not-rendered"]);
    expect(j.findings[1].message).to.equal("blue: the widget did not render in 1 of 2 loads");
  });

  it("leaves loads the edge answered with a 5xx to the step analysis: noted, not judged", () => {
    const down = load({ rendered: false, metrics: null, unavailable: "/ status 503 on 5 attempts" });
    const j = judgeBrowserRun(run("blue", down, load()), healthy("green"));
    expect(j.verdict).to.equal("passed");
    expect(j.notes).to.deep.equal(["blue: 1 of 2 loads not judged (/ status 503 on 5 attempts)"]);
    expect(j.medians.blue?.loads).to.equal(1);
  });

  it("fails a candidate whose median render time is more than 50 percent worse, net of the edge's wait", () => {
    const slow = run("blue", load({}, { renderMs: 330, loadMs: 340 }), load({}, { renderMs: 320, loadMs: 335 }), load({}, { renderMs: 30 }));
    const j = judgeBrowserRun(slow, healthy("green"));
    expect(j.findings.map((f) => f.message)).to.deep.equal([
      "blue: render time 310ms against green's 20ms (medians of 3 and 3 loads) is more than 50 percent worse",
      "blue: load time 325ms against green's 30ms (medians of 3 and 3 loads) is more than 50 percent worse",
    ]);
  });

  it("does not fail a slot that is slower only because the edge answers it later (the step analysis's p95)", () => {
    const laggy = run("blue", ...[0, 1, 2].map(() => load({}, { renderMs: 530, loadMs: 540, serverWaitMs: 510 })));
    expect(judgeBrowserRun(laggy, healthy("green")).verdict).to.equal("passed");
  });

  it("fails three times the bytes and long tasks; ignores differences below the noise floors", () => {
    const heavy = run("blue", ...[0, 1, 2].map(() => load({}, { bytes: 300_000, longTaskMs: 300 })));
    const base = run("green", ...[0, 1, 2].map(() => load({}, { bytes: 100_000, longTaskMs: 100 })));
    expect(judgeBrowserRun(heavy, base).findings.map((f) => f.message.split(" against")[0])).to.deep.equal(["blue: transferred bytes 300000 B", "blue: long tasks 300ms"]);
    // 2 KB more on a 2 KB widget, 49 ms of long tasks where there were none, 90 ms more render: under the floors.
    const slightly = run("blue", ...[0, 1, 2].map(() => load({}, { bytes: 4_000, longTaskMs: 49, renderMs: 120 })));
    expect(judgeBrowserRun(slightly, healthy("green")).verdict).to.equal("passed");
  });

  it("judges medians: one slow load in three does not fail", () => {
    const j = judgeBrowserRun(run("blue", load({}, { renderMs: 2_000, loadMs: 2_000 }), load(), load()), healthy("green"));
    expect(j.verdict).to.equal("passed");
  });

  it("honours a configured threshold", () => {
    const slower = run("blue", ...[0, 1, 2].map(() => load({}, { renderMs: 160, loadMs: 40 })));
    expect(judgeBrowserRun(slower, healthy("green"), { ...DEFAULT_THRESHOLDS, maxRegression: 10 }).verdict).to.equal("passed");
    expect(judgeBrowserRun(slower, healthy("green")).verdict).to.equal("failed");
  });

  it("has no regression to judge on a stack's first release", () => {
    const heavy = run("blue", load({}, { bytes: 5_000_000 }));
    expect(judgeBrowserRun(heavy, null).verdict).to.equal("passed");
  });

  it("takes the middle value, or the mean of the two middle ones", () => {
    expect(median([5, 1, 3])).to.equal(3);
    expect(median([4, 1, 3, 2])).to.equal(2.5);
  });
});

describe("framing a widget on another origin", () => {
  const host = "http://127.0.0.1:4000";
  it("is forbidden by X-Frame-Options, and by a frame-ancestors list without the host origin", () => {
    expect(framingForbidden({ "x-frame-options": "DENY" }, host)).to.equal("X-Frame-Options DENY");
    expect(framingForbidden({ "content-security-policy": "default-src 'self'; frame-ancestors https://a.example" }, host)).to.equal("Content-Security-Policy frame-ancestors https://a.example");
  });
  it("is allowed without either header, or by frame-ancestors naming the origin (which wins over X-Frame-Options)", () => {
    expect(framingForbidden({}, host)).to.equal(undefined);
    expect(framingForbidden({ "x-frame-options": "DENY", "content-security-policy": `frame-ancestors ${host}` }, host)).to.equal(undefined);
  });
});

describe("browserGate stack config", () => {
  const base = { environment: "local", slots: { blue: {}, green: {} }, stable: "blue", weights: { blue: 100, green: 0 } };
  it("defaults to enabled, .picasso-widget, 3 loads, 15 s, 50 percent, before viewer traffic only", () => {
    const c = parseStackConfig(base, "local", { hasPreviewToken: true });
    expect(c.verification.browserGate).to.deep.equal({ enabled: true, selector: ".picasso-widget", loads: 3, timeoutMs: 15_000, maxRegression: 0.5, everyStep: false });
  });
  it("names the key, the value and what is allowed", () => {
    const bad = { ...base, verification: { browserGate: { loads: 0 } } };
    expect(() => parseStackConfig(bad, "local", { hasPreviewToken: true })).to.throw(ConfigError, "picasso-widget:verification.browserGate.loads = 0: expected an integer from 1 to 20");
    const unknown = { ...base, verification: { browserGate: { loadz: 3 } } };
    expect(() => parseStackConfig(unknown, "local", { hasPreviewToken: true })).to.throw(ConfigError, "picasso-widget:verification.browserGate.loadz = 3: expected no such key here");
  });
});

describe("finding a browser", () => {
  it("takes BLUEGREEN_CHROMIUM first, then a Chrome or Chromium on PATH", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "bluegreen-browsers-"));
    try {
      writeFileSync(path.join(dir, "google-chrome"), "");
      expect(await findBrowser({ PATH: dir })).to.deep.equal({ executable: path.join(dir, "google-chrome"), source: "system" });
      expect(await findBrowser({ PATH: dir, BLUEGREEN_CHROMIUM: path.join(dir, "google-chrome") })).to.deep.include({ source: "BLUEGREEN_CHROMIUM" });
      await findBrowser({ BLUEGREEN_CHROMIUM: path.join(dir, "missing") }).then(
        () => expect.fail("a missing BLUEGREEN_CHROMIUM was accepted"),
        (err: Error) => expect(err.message).to.equal(`BLUEGREEN_CHROMIUM=${path.join(dir, "missing")} does not exist`),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
