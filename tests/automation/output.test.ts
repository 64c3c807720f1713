import { Terminal } from "@xterm/headless";
import { expect } from "chai";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { notify } from "../../automation/notify";
import { Reporter } from "../../automation/output";
import type { StepReport } from "../../automation/rollout";

const step = (index: number, weight: number): StepReport => ({
  index,
  weight,
  verdict: "passed",
  observedShare: weight,
  viewerSamples: 100,
  metrics: null,
  findings: [],
  timings: { configMs: 0, upMs: 0, propagationMs: 0, bakeMs: 0 },
});

function capture(isTTY: boolean, env: NodeJS.ProcessEnv) {
  let err = "";
  let out = "";
  const reporter = new Reporter({ json: true, env, stderr: { isTTY, write: (t: string) => ((err += t), true) }, stdout: { write: (t: string) => ((out += t), true) } });
  return { reporter, err: () => err, out: () => out };
}

describe("progress output", () => {
  it("redraws a live step table in place on a TTY, in colour", () => {
    const c = capture(true, {});
    c.reporter.emit({ kind: "plan", plan: { release: "2.0.0", stable: "blue", candidate: "green", bootstrap: false, steps: [10, 100], bakeMs: 1000, firstRevision: 1 } });
    c.reporter.emit({ kind: "step", step: step(0, 10), total: 2 });
    // A header and two step rows: the cursor goes up three rows, to column 0, and clears the screen below.
    expect(c.err()).to.include("\u001b[3A\r\u001b[J");
    expect(c.err()).to.include("\u001b[32m");
    expect(c.err()).to.include("2/2 100%  pending");
  });

  it("marks the step left mid-bake (a signal, an abort) interrupted, and those after it not run", async () => {
    const term = new Terminal({ cols: 80, rows: 12, scrollback: 100, allowProposedApi: true, convertEol: true });
    let written = Promise.resolve();
    const write = (t: string) => ((written = written.then(() => new Promise<void>((r) => term.write(t, r)))), true);
    const reporter = new Reporter({ json: false, env: {}, stderr: { isTTY: true, columns: 80, rows: 12, write } });
    reporter.emit({ kind: "plan", plan: { release: "2.0.0", stable: "blue", candidate: "green", bootstrap: false, steps: [10, 50, 100], bakeMs: 60_000, firstRevision: 1 } });
    reporter.emit({ kind: "step", step: step(0, 10), total: 3 });
    reporter.emit({ kind: "bake", bake: { index: 1, weight: 50, check: 1, bakeMs: 60_000, elapsedMs: 20_000, probes: { done: 80, planned: 240 }, errors: { blue: 0, green: 0 }, unattributed: 0 } });
    reporter.close(1);
    await written;
    const screen = Array.from({ length: 12 }, (_, i) => term.buffer.active.getLine(term.buffer.active.baseY + i)!.translateToString(true)).filter((l) => l !== "");
    expect(screen.slice(1)).to.deep.equal(["✓ 1/3  10%  passed", "✗ 2/3  50%  interrupted in its bake", "  3/3 100%  not run"]);
  });

  it("keeps a plan taller than the terminal inside it: the rows around the step in progress, the others summed up", async () => {
    const term = new Terminal({ cols: 80, rows: 12, scrollback: 100, allowProposedApi: true, convertEol: true });
    let written = Promise.resolve();
    const write = (t: string) => ((written = written.then(() => new Promise<void>((r) => term.write(t, r)))), true);
    const reporter = new Reporter({ json: false, env: {}, stderr: { isTTY: true, columns: 80, rows: 12, write } });
    const steps = Array.from({ length: 20 }, (_, i) => 5 * (i + 1));
    reporter.emit({ kind: "plan", plan: { release: "2.0.0", stable: "blue", candidate: "green", bootstrap: false, steps, bakeMs: 1000, firstRevision: 1 } });
    for (let i = 0; i < 12; i++) {
      reporter.emit({ kind: "info", message: `green at ${steps[i]}%` });
      reporter.emit({ kind: "step", step: step(i, steps[i]), total: 20 });
    }
    reporter.close(0);
    await written;
    const screen = Array.from({ length: 12 }, (_, i) => term.buffer.active.getLine(term.buffer.active.baseY + i)!.translateToString(true));
    expect(screen.slice(0, 11)).to.deep.equal([
      "2.0.0 → green (stable blue): 20 steps, bake 0:01 each",
      "  steps 1-11: 11 passed",
      "✓ 12/20  60%  passed",
      ...steps.slice(12, 19).map((w, i) => `  ${i + 13}/20 ${String(w).padStart(3)}%  not run`),
      "  step 20: not run",
    ]);
  });

  it("prints plain lines without escape codes in CI and when NO_COLOR is set", () => {
    for (const env of [{ CI: "true" }, { NO_COLOR: "1" }]) {
      const c = capture(true, env);
      c.reporter.emit({ kind: "step", step: step(0, 10), total: 1 });
      c.reporter.emit({ kind: "info", message: "hello" });
      // eslint-disable-next-line no-control-regex
      expect(c.err(), JSON.stringify(env)).to.not.match(/\u001b\[/);
      expect(c.err()).to.match(/hello\n$/);
    }
  });

  it("in a log, says once a minute how a long bake is going (by the rollout's clock), nothing in its first minute", () => {
    const c = capture(false, { CI: "true" });
    c.reporter.emit({ kind: "plan", plan: { release: "2.0.0", stable: "blue", candidate: "green", bootstrap: false, steps: [10, 100], bakeMs: 300_000, firstRevision: 1 } });
    const bake = (elapsedMs: number, done: number, check = 1) =>
      c.reporter.emit({ kind: "bake", bake: { index: 0, weight: 10, check, bakeMs: 300_000, elapsedMs, probes: { done, planned: 1200 }, errors: { blue: 0, green: 2 }, unattributed: 0 } });
    for (const [elapsed, done] of [[1_000, 4], [59_000, 236], [60_500, 242], [61_000, 244], [119_000, 476], [125_000, 500]]) bake(elapsed, done);
    bake(61_000, 244, 2);
    expect(c.err().split("\n").filter((l) => l !== "")).to.deep.equal([
      "step 1/2 (10%): baking, 4:00 left, 242/1200 probes, errors blue 0 green 2",
      "step 1/2 (10%): baking, 2:55 left, 500/1200 probes, errors blue 0 green 2",
      "step 1/2 (10%, recheck 2): baking, 3:59 left, 244/1200 probes, errors blue 0 green 2",
    ]);
  });

  it("prints one JSON report on stdout with --json", () => {
    const c = capture(false, {});
    c.reporter.finish({ result: "succeeded" }, "# summary", "done");
    expect(JSON.parse(c.out())).to.deep.equal({ result: "succeeded" });
    expect(c.err()).to.equal("done\n");
  });
});

describe("webhook notifications", () => {
  let server: Server;
  const received: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        received.push(body);
        res.end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });

  after(() => server.close());

  it("posts Slack-compatible JSON and never fails when a webhook is down (only warns, naming the host, not the URL)", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const warnings: string[] = [];
    const live = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/T000/SECRET`;
    await notify([live, `http://127.0.0.1:${deadPort}/hooks/T000/SECRET`], "bluegreen local: 2.0.0 succeeded", (m) => warnings.push(m));
    expect(received.map((b) => JSON.parse(b))).to.deep.equal([{ text: "bluegreen local: 2.0.0 succeeded" }]);
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.match(new RegExp(`webhook 127\\.0\\.0\\.1:${deadPort} unreachable`));
    expect(warnings[0]).to.not.include("SECRET");
  });
});
