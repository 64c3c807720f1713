// What an operator sees of real rollouts on the local cloud, through the CLI in a child process: the live view on a
// real pseudo-terminal, rendered by a terminal emulator (@xterm/headless) at the width the terminal had, and the GitHub
// job summary the same runs write for every exit code (0, 1, 2 and 3), and their JSON reports as HTML pages in a real
// browser.
import { Terminal } from "@xterm/headless";
import { expect } from "chai";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "../../automation/browserGate";
import { exitCodeOf } from "../../automation/errors";
import { writeHtmlReport } from "../../automation/htmlReport";
import { deploy } from "../../automation/deploy";
import { REPO_ROOT } from "../../automation/local/state";
import { Reporter } from "../../automation/output";
import type { DeployReport } from "../../automation/rollout";
import type { ConfigMap } from "../../automation/port";
import { PREVIEW_TOKEN, RELEASES_DIR, startE2E, type CliResult, type E2E } from "./support";

const BIN = path.join(REPO_ROOT, "bin", "bluegreen.js");

interface Screen {
  /** Every row the terminal holds, scrollback included, as a reader sees it (trailing blanks cut). */
  rows: string[];
  /** Rows the terminal wrapped because the text before them did not fit the width. */
  wrapped: string[];
}

interface TerminalRun {
  code: number | null;
  screen: Screen;
  /** The step row being baked, each distinct text it had on screen while the CLI ran. */
  bakeFrames: string[];
  /** Every byte the CLI wrote to the terminal. */
  raw: string;
}

function screenOf(term: Terminal): Screen {
  const rows: string[] = [];
  const wrapped: string[] = [];
  const buffer = term.buffer.active;
  for (let i = 0; i < buffer.length; i++) {
    const line = buffer.getLine(i)!;
    const text = line.translateToString(true);
    if (line.isWrapped) wrapped.push(text);
    rows.push(text);
  }
  while (rows.length > 0 && rows[rows.length - 1] === "") rows.pop();
  return { rows, wrapped };
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs `bluegreen ...args` on a pseudo-terminal of `cols` columns (util-linux `script`; `stty` sets the size the CLI
 * reads from process.stderr.columns), stdout to `stdoutFile`, and feeds what the terminal shows to a terminal emulator
 * of the same size as it arrives.
 */
function runOnTerminal(e2e: E2E, cols: number, args: string[], stdoutFile: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<TerminalRun> {
  const term = new Terminal({ cols, rows: 40, scrollback: 1000, allowProposedApi: true });
  const command = `stty cols ${cols} rows 40 && exec ${[process.execPath, BIN, ...args].map(shellQuote).join(" ")} > ${shellQuote(stdoutFile)}`;
  // CI and NO_COLOR set by startE2E would turn the live view off: this is a person's terminal.
  const env = { ...e2e.env, CI: "", NO_COLOR: "", TERM: "xterm-256color", ...extraEnv };
  const child = spawn("script", ["--quiet", "--flush", "--return", "--command", command, "/dev/null"], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let raw = "";
  let errors = "";
  const bakeFrames: string[] = [];
  let written: Promise<void> = Promise.resolve();
  child.stdout.on("data", (chunk: Buffer) => {
    raw += chunk.toString();
    written = written.then(
      () =>
        new Promise<void>((resolve) =>
          term.write(chunk, () => {
            const baking = screenOf(term).rows.find((r) => r.startsWith("▸"));
            if (baking !== undefined && bakeFrames.at(-1) !== baking) bakeFrames.push(baking);
            resolve();
          }),
        ),
    );
  });
  child.stderr.on("data", (d: Buffer) => (errors += d.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", (err) => reject(new Error(`util-linux script(1) is needed for the pseudo-terminal: ${err.message}`)));
    child.on("close", (code) => {
      void written.then(() => {
        if (errors !== "") reject(new Error(`script(1) failed: ${errors}`));
        else resolve({ code, screen: screenOf(term), bakeFrames, raw });
      });
    });
  });
}

/** The rows of the step table: `✓ 1/5  10%  ...`, `▸ 2/5 ...`, `  3/5  50%  pending`. */
function stepRows(screen: Screen, total: number): Map<number, string[]> {
  const byStep = new Map<number, string[]>();
  for (const row of screen.rows) {
    const m = new RegExp(`^(?:[✓✗?▸] | {2})(\\d+)/${total} `).exec(row);
    if (m) byStep.set(Number(m[1]), [...(byStep.get(Number(m[1])) ?? []), row]);
  }
  return byStep;
}

/** GitHub's default variables as a workflow run has them. */
const GITHUB = { GITHUB_SERVER_URL: "https://github.com", GITHUB_REPOSITORY: "acme/widget", GITHUB_RUN_ID: "4242", GITHUB_SHA: "0123456789abcdef0123456789abcdef01234567" };
const RUN_LINK = "[acme/widget #4242](https://github.com/acme/widget/actions/runs/4242)";
const COMMIT_LINK = "[`0123456`](https://github.com/acme/widget/commit/0123456789abcdef0123456789abcdef01234567)";
const PROD = "local-prod";

describe("what the operator sees of a rollout", function () {
  this.timeout(180_000);
  let e2e: E2E;
  const summaryFile = (name: string) => path.join(e2e.stateDir, `summary-${name}.md`);
  const summaryOf = (name: string) => {
    const file = summaryFile(name);
    expect(existsSync(file), `${file} written`).to.equal(true);
    return readFileSync(file, "utf8");
  };
  const gitHubEnv = (name: string) => ({ ...GITHUB, GITHUB_STEP_SUMMARY: summaryFile(name) });
  /** The Markdown table rows of the summary's step table. */
  const stepTableRows = (md: string) => md.split("\n").filter((l) => /^\| \d+ \| \d+% \|/.test(l));
  /** The --json reports of the rolled-back and the completed rollout, for `bluegreen report`. */
  const rolledBackReport = () => path.join(e2e.stateDir, "report-rolled-back.json");
  const completedReport = () => path.join(e2e.stateDir, "report-completed.json");
  const mermaidBlocks = (md: string) => [...md.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]);

  /** The browser gate on or off in a stack's config (it costs seconds; only the rollout the HTML report shows needs it). */
  async function browserGate(stack: string, enabled: boolean): Promise<ConfigMap> {
    const current = await (await e2e.cloud.stack(stack)).getAllConfig();
    const verification = JSON.parse(current["picasso-widget:verification"].value) as { browserGate?: object };
    return { "picasso-widget:verification": { value: JSON.stringify({ ...verification, browserGate: { ...verification.browserGate, enabled } }), secret: false } };
  }

  before(async () => {
    e2e = await startE2E();
    // Fresh stacks: config set now is what their first rollout reads (no update yet to sync from).
    await (await e2e.cloud.stack("local")).setAllConfig(await browserGate("local", false));
    // A production stand-in with an approval gate, for the promotion.
    const gate = { required: ["tech-lead", "ops-lead"], holders: { "tech-lead": ["alice-lead"], "ops-lead": ["omar-ops"] } };
    await (await e2e.cloud.stack(PROD)).setAllConfig({ ...(await browserGate(PROD, false)), "picasso-widget:approvals": { value: JSON.stringify(gate), secret: false } });
    // The first release, in this process (a warm program worker): blue becomes the stable slot.
    const quiet = new Reporter({ json: false, stderr: { write: () => true }, env: {} });
    await deploy({ stack: "local", artifact: path.join(RELEASES_DIR, "1.0.0"), release: "1.0.0", json: false, dryRun: false }, quiet, { cloud: e2e.cloud });
  });

  after(async () => {
    await e2e?.close();
  });

  describe("a rollout reverted at 50 percent (exit 1) on a 200-column terminal", () => {
    let run: TerminalRun;
    before(async () => {
      // The staging up and the first two steps' ups succeed; the third step's up fails: reverted at 50 percent.
      e2e.cloud.failUps("local", { skip: 3, fail: 1 });
      try {
        run = await runOnTerminal(e2e, 200, ["deploy", "--stack", "local", "--artifact", path.join(RELEASES_DIR, "2.0.0"), "--release", "2.0.0", "--bake", "0s", "--json"], rolledBackReport(), gitHubEnv("exit1"));
      } finally {
        e2e.cloud.clearFaults("local");
      }
    });

    it("shows the failed step, the steps not run and the revert, each step once", () => {
      const shown = run.screen.rows.join("\n");
      expect(run.code, shown).to.equal(1);
      const rows = stepRows(run.screen, 5);
      for (const step of [1, 2, 3, 4, 5]) expect(rows.get(step), `step ${step} on the final screen:\n${shown}`).to.have.length(1);
      expect(rows.get(1)![0]).to.match(/^✓ 1\/5 {2}10% {2}observed +\d+\.\d% of \d+ viewers {2}passed {2}blue \d+ req \d+\.\d% err p95 \d+\.\d ms \| green \d+ req/);
      expect(rows.get(3)![0]).to.match(/^✗ 3\/5 {2}50% {2}up-failed: pulumi up failed at 50%/);
      expect(rows.get(4)![0]).to.equal("  4/5  75%  not run");
      expect(rows.get(5)![0]).to.equal("  5/5 100%  not run");
      expect(run.screen.wrapped, `rows the terminal wrapped at 200 columns:\n${shown}`).to.deep.equal([]);
      expect(shown).to.match(/rolled back: pulumi up failed at 50%/);
    });

    it("writes a job summary with the steps run, the failed one and those not run, and where traffic went back", () => {
      const md = summaryOf("exit1");
      expect(md).to.match(/^### ↩️ bluegreen deploy `local`: 2\.0\.0 on green — rolled-back \(exit 1\)$/m);
      expect(md).to.match(/^> \*\*exit 1, rolled back, traffic is back on the stable slot:\*\* 2\.0\.0 rolled back at 50%: pulumi up failed at 50%/m);
      expect(stepTableRows(md).map((r) => r.split(" | ").slice(0, 3).join(" | "))).to.deep.equal([
        "| 1 | 10% | ✅ passed",
        "| 2 | 25% | ✅ passed",
        "| 3 | 50% | ❌ up-failed: pulumi up failed at 50%: code: -2",
        "| 4 | 75% | not run",
        "| 5 | 100% | not run",
      ]);
      expect(md).to.include("| blue | 1.0.0 · 100% · stable | 1.0.0 · 100% · stable |");
      expect(md).to.include("| green | (none) · 0% · candidate | 2.0.0 · 0% · idle, rolled back |");
      expect(md).to.match(/\*\*Rolled back\*\* at step 3 \(50%\): pulumi up failed at 50%/);
      // The charts have the two steps that measured something.
      for (const chart of mermaidBlocks(md)) expect(chart).to.include('x-axis "step (weight)" ["1 (10%)", "2 (25%)"]');
      expect(md).to.include(`**Commit:** ${COMMIT_LINK}`);
    });
  });

  describe("a rollout that completes (exit 0) on an 80-column terminal", () => {
    let run: TerminalRun;
    before(async () => {
      // This rollout's browser gate runs: its screenshots go into the HTML report.
      await e2e.tune({ verification: { browserGate: { enabled: true } } });
      run = await runOnTerminal(
        e2e,
        80,
        ["deploy", "--stack", "local", "--artifact", path.join(RELEASES_DIR, "2.0.0"), "--release", "2.0.0", "--bake", "1s", "--json"],
        completedReport(),
        gitHubEnv("exit0"),
      );
    });

    it("redraws one row per step in place, none wrapped, the bake counting down with its probes and errors", () => {
      const shown = run.screen.rows.join("\n");
      expect(run.code, shown).to.equal(0);
      const rows = stepRows(run.screen, 5);
      for (const step of [1, 2, 3, 4, 5]) {
        expect(rows.get(step), `step ${step} on the final screen:\n${shown}`).to.have.length(1);
        expect(rows.get(step)![0], shown).to.match(/^✓ \d\/5 +\d+% {2}obs +\d+\.\d% {2}passed {2}blue \d+\.\d% \d+ms {2}green \d+\.\d% \d+ms$/);
      }
      expect(run.screen.wrapped, `rows the terminal wrapped at 80 columns:\n${shown}`).to.deep.equal([]);
      expect(run.screen.rows.filter((r) => r.includes("2.0.0 → green (stable blue): 5 steps"))).to.have.length(1);
      expect(shown).to.match(/2\.0\.0 is live on green/);
      // The bake moved on screen: a countdown and a probe count that changed while it ran.
      expect(run.bakeFrames.length, `bake rows seen:\n${run.bakeFrames.join("\n")}`).to.be.at.least(2);
      // At 80 columns a first check's row is whole; a longer one (a recheck, many errors) is condensed to fit.
      for (const frame of run.bakeFrames) expect(frame).to.match(/^▸ \d\/5 +\d+% {2}(baking: \d+:\d\d left, \d+\/2000 probes, errors blue \d+ green \d+|(recheck \d, )?\d+:\d\d left {2}\d+\/2000 {2}err blue \d+ green \d+|\d+:\d\d {2}\d+\/2000 {2}err \d+\/\d+)/);
      expect(new Set(run.bakeFrames.map((f) => /(\d+)\/2000/.exec(f)![1])).size).to.be.at.least(2);
      // Colour on a terminal without NO_COLOR.
      expect(run.raw).to.include("\u001b[32m");
    });

    it("writes a job summary with both slots, every step, the links, the thresholds and charts of share, errors and p95", () => {
      const md = summaryOf("exit0");
      expect(md).to.match(/^### ✅ bluegreen deploy `local`: 2\.0\.0 on green — succeeded \(exit 0\)$/m);
      const viewers = `http://local.bluegreen.localhost:${new URL(e2e.cloud.url).port}/`;
      expect(md).to.include(`**Viewers:** ${viewers}`);
      expect(md).to.include(`**Idle slot** blue (1.0.0): ${viewers}_r/blue/1.0.0/`);
      expect(md).to.include(`**CI run:** ${RUN_LINK}`);
      expect(md).to.include(`**Commit:** ${COMMIT_LINK}`);
      expect(md).to.include("| blue | 1.0.0 · 100% · stable | 1.0.0 · 0% · idle, the rollback target |");
      expect(md).to.include("| green | (none) · 0% · candidate | 2.0.0 · 100% · stable |");
      const steps = stepTableRows(md);
      expect(steps.map((r) => r.split(" | ").slice(0, 3).join(" | "))).to.deep.equal(["| 1 | 10% | ✅ passed", "| 2 | 25% | ✅ passed", "| 3 | 50% | ✅ passed", "| 4 | 75% | ✅ passed", "| 5 | 100% | ✅ passed"]);
      for (const row of steps) expect(row).to.match(/\| \d+\.\d% of \d+ \| \d+\.\d+% \(\d+\/\d+\) \| \d+\.\d ms \| \d+\.\d+% \(\d+\/\d+\) \| \d+\.\d ms \|$/);
      const charts = mermaidBlocks(md);
      expect(charts.map((c) => /title "([^"]+)"/.exec(c)?.[1])).to.deep.equal(["Traffic on green: weight (bars), observed share (line)", "Error rate: green (bars), blue (line)", "p95 latency: green (bars), blue (line)"]);
      for (const chart of charts) {
        expect(chart).to.match(/^xychart-beta\n/);
        expect(chart).to.include('x-axis "step (weight)" ["1 (10%)", "2 (25%)", "3 (50%)", "4 (75%)", "5 (100%)"]');
        expect(chart).to.match(/ {2}bar \[(-?\d+(\.\d+)?, ){4}-?\d+(\.\d+)?\]/);
        expect(chart).to.match(/ {2}line \[(-?\d+(\.\d+)?, ){4}-?\d+(\.\d+)?\]/);
      }
      expect(charts[0]).to.include("bar [10, 25, 50, 75, 100]");
      expect(charts[0]).to.include('y-axis "percent" 0 --> 100');
      expect(charts[1]).to.match(/y-axis "percent" 0 --> \d/);
      expect(md).to.include("| max error rate | 5.0% |");
      expect(md).to.include("| bake per step | 1 s |");
      expect(md).to.match(/\*\*Browser gate\*\*: passed before any viewer traffic \((iframe|top-level)\)/);
      expect(md).to.not.include(PREVIEW_TOKEN);
    });
  });

  describe("a promotion with approvers (exit 0)", () => {
    it("titles the summary as a promotion from one stack to the other and names the approvers and their roles", async () => {
      const res = await e2e.cli(["promote", "--from", "local", "--to", PROD, "--approve", "tech-lead=alice-lead", "--approve", "ops-lead=omar-ops"], gitHubEnv("promote"));
      expect(res.code, res.stderr).to.equal(0);
      const md = summaryOf("promote");
      expect(md).to.match(/^### ✅ bluegreen promotion `local` → `local-prod`: 2\.0\.0 on blue — succeeded \(exit 0\)$/m);
      expect(md).to.match(/\*\*Approved by\*\* alice-lead \(tech-lead; command-line \(local stack only\)\), omar-ops \(ops-lead; command-line \(local stack only\)\)/);
      expect(stepTableRows(md).map((r) => r.split(" | ").slice(0, 3).join(" | "))).to.deep.equal(["| 1 | 100% | ✅ passed"]);
      expect(md).to.include(`**CI run:** ${RUN_LINK}`);
      expect(md).to.not.match(/bluegreen deploy/);
    });
  });

  describe("bad input (exit 2)", () => {
    // Two child processes at once: each pays the CLI's start-up, and neither changes anything.
    let byValue: CliResult;
    let byFlag: CliResult;
    let query: CliResult;
    before(async () => {
      [byValue, byFlag, query] = await Promise.all([
        e2e.cli(["deploy", "--stack", "local", "--artifact", path.join(RELEASES_DIR, "2.0.0"), "--release", "two point oh"], gitHubEnv("exit2-value")),
        e2e.cli(["deploy", "--stack", "local", "--artifact", path.join(RELEASES_DIR, "2.0.0"), "--relase", "4.0.0"], gitHubEnv("exit2-flag")),
        // Alongside: a query, which workflows poll in loops, writes no summary at all.
        e2e.cli(["status", "--stack", "local", "--json"], gitHubEnv("status")),
      ]);
    });

    it("writes no job summary for a query (status), which workflows poll", () => {
      expect(query.code, query.stderr).to.equal(0);
      expect(existsSync(summaryFile("status"))).to.equal(false);
    });

    it("writes a job summary naming the refused value when the command rejects it", () => {
      expect(byValue.code, byValue.stderr).to.equal(2);
      const md = summaryOf("exit2-value");
      expect(md).to.match(/^### ⛔ bluegreen deploy `local` — bad input, nothing changed \(exit 2\)$/m);
      expect(md).to.match(/^> \*\*exit 2, bad input, nothing changed:\*\* --release = "two point oh": expected /m);
      expect(md).to.include(`**CI run:** ${RUN_LINK}`);
    });

    it("writes a job summary when the command line itself is refused (a mistyped flag)", () => {
      expect(byFlag.code, byFlag.stderr).to.equal(2);
      const md = summaryOf("exit2-flag");
      expect(md).to.match(/^### ⛔ bluegreen deploy — bad input, nothing changed \(exit 2\)$/m);
      expect(md).to.match(/^> \*\*exit 2, bad input, nothing changed:\*\* unknown option --relase \(did you mean --release\?\)/m);
      expect(md).to.include(`**Commit:** ${COMMIT_LINK}`);
    });
  });

  describe("an unsettled stack (exit 3 before any traffic moves)", () => {
    it("writes a job summary with the slots as found, the thresholds, the steps that would have run and what to run", async () => {
      await e2e.tune({ weights: { blue: 50, green: 50 } });
      const res = await e2e.cli(["deploy", "--stack", "local", "--artifact", e2e.release("3.0.0"), "--release", "3.0.0"], gitHubEnv("exit3"));
      expect(res.code, res.stderr).to.equal(3);
      const md = summaryOf("exit3");
      expect(md).to.match(/^### 🚨 bluegreen deploy `local`: 3\.0\.0 — operator needed \(exit 3\)$/m);
      expect(md).to.match(/^> \*\*exit 3, operator needed:\*\* stack local is not settled .*; run: bluegreen rollback --stack local$/m);
      expect(md).to.include("| blue | 1.0.0 · 50% · idle | unchanged |");
      expect(md).to.include("| green | 2.0.0 · 50% · stable | unchanged |");
      expect(md).to.include("Planned steps (stack config): 10%, 25%, 50%, 75%, 100%; none ran.");
      expect(md).to.include("| failing checks in a row to roll back | 2 |");
      expect(md).to.include(`**CI run:** ${RUN_LINK}`);
    });
  });
  describe("the HTML report (bluegreen report --from report.json --out report.html)", () => {
    let browser: Browser;
    before(async () => {
      browser = (await launchBrowser(30_000)).browser;
    });
    after(async () => {
      await browser?.close();
    });

    interface Rendered {
      requests: string[];
      problems: string[];
      page: Page;
    }

    /** Opens the page in the real browser, recording every request it makes and every error it logs or throws. */
    async function open(file: string): Promise<Rendered> {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const requests: string[] = [];
      const problems: string[] = [];
      page.on("request", (r) => requests.push(r.url()));
      page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`));
      page.on("console", (m) => (m.type() === "error" || m.type() === "warning") && problems.push(`console ${m.type()}: ${m.text()}`));
      page.on("pageerror", (err) => problems.push(`uncaught: ${err.message}`));
      await page.goto(pathToFileURL(file).toString(), { waitUntil: "load" });
      return { requests, problems, page };
    }

    async function attributes(page: Page, selector: string, name: string): Promise<(string | null)[]> {
      return Promise.all((await page.locator(selector).all()).map((element) => element.getAttribute(name)));
    }
    const pointCount = (points: string | null) => (points ?? "").split(" ").filter((p) => p !== "").length;
    /** Each chart line's series name and number of points. */
    async function series(page: Page, figure: string): Promise<[string | null, number][]> {
      const lines = await page.locator(`${figure} polyline`).all();
      return Promise.all(lines.map(async (l) => [await l.getAttribute("data-series"), pointCount(await l.getAttribute("points"))] as [string | null, number]));
    }
    /** The steps table: each row's class, then its step, weight and verdict cells. */
    async function stepCells(page: Page): Promise<(string | null)[][]> {
      const rows = await page.locator("#steps tbody tr").all();
      return Promise.all(rows.map(async (tr) => [await tr.getAttribute("class"), ...(await tr.locator("td").allTextContents()).slice(0, 3)]));
    }

    /**
     * `bluegreen report` (a child process, or its function in this process), then the page it wrote in the real browser:
     * `check` reads it, and the page
     * must have logged no error, thrown nothing and requested nothing but itself.
     */
    async function rendered(from: string, name: string, how: "cli" | "in-process", check: (page: Page) => Promise<void>): Promise<void> {
      const out = path.join(e2e.stateDir, name);
      if (how === "cli") {
        const res = await e2e.cli(["report", "--from", from, "--out", out]);
        expect(res.code, res.stderr).to.equal(0);
        expect(res.stderr).to.match(new RegExp(`^wrote ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(\\d+ bytes, 2 screenshots embedded\\)\\n$`));
      } else writeHtmlReport({ from, out });
      const { page, requests, problems } = await open(out);
      try {
        await check(page);
        expect(problems).to.deep.equal([]);
        expect(requests).to.deep.equal([pathToFileURL(out).toString()]);
      } finally {
        await page.close();
      }
    }

    it("renders the completed rollout in a real browser: timeline, per-slot charts, every step, the gate's screenshots, no errors, no request but the page", async () => {
      await rendered(completedReport(), "completed.html", "cli", async (page) => {
        const seen = {
          title: await page.locator("h1").textContent(),
          links: await attributes(page, "#links a", "href"),
          timeline: (await attributes(page, "#timeline polyline", "points")).map(pointCount),
          weightBars: await page.locator("#timeline rect[opacity]").count(),
          errors: await series(page, "#errors"),
          p95: await series(page, "#p95"),
          steps: (await stepCells(page)).map((row) => row.slice(1)),
          shots: (await attributes(page, "#screenshots img", "alt")).map((alt) => ({ alt })),
          dataUris: (await attributes(page, "#screenshots img", "src")).map((src) => src?.startsWith("data:image/png;base64,")),
          // The browser decoded each embedded PNG into an image of some width.
          widths: await page.evaluate<number[]>("[...document.querySelectorAll('#screenshots img')].map((img) => img.naturalWidth)"),
          svgWidths: await Promise.all((await page.locator("svg").all()).map(async (svg) => (await svg.boundingBox())?.width ?? 0)),
        };
        expect(seen.title).to.equal("bluegreen local: 2.0.0 on green succeeded");
        const viewers = `http://local.bluegreen.localhost:${new URL(e2e.cloud.url).port}/`;
        expect(seen.links).to.deep.equal([viewers, `${viewers}_r/blue/1.0.0/`]);
        expect(seen.timeline).to.deep.equal([5]);
        expect(seen.weightBars).to.be.at.least(5);
        expect(seen.errors).to.deep.equal([["blue error rate", 5], ["green error rate", 5]]);
        expect(seen.p95).to.deep.equal([["blue p95", 5], ["green p95", 5]]);
        expect(seen.steps).to.deep.equal([["1", "10%", "passed"], ["2", "25%", "passed"], ["3", "50%", "passed"], ["4", "75%", "passed"], ["5", "100%", "passed"]]);
        expect(seen.shots.map((s) => s.alt)).to.have.members(["green slot as the browser gate rendered it before any viewer traffic", "blue slot as the browser gate rendered it before any viewer traffic"]);
        expect(seen.dataUris).to.deep.equal([true, true]);
        expect(seen.widths).to.have.length(2);
        for (const width of seen.widths) expect(width).to.be.above(0);
        expect(seen.svgWidths).to.have.length(3);
        for (const width of seen.svgWidths) expect(width).to.be.above(100);
        const png = await page.screenshot({ fullPage: true });
        expect(png.subarray(0, 8).toString("hex")).to.equal("89504e470d0a1a0a");
        expect(png.length).to.be.above(20_000);
      });
    });

    it("renders the rolled-back rollout: the failed step, the steps not run and the findings", async () => {
      await rendered(rolledBackReport(), "rolled-back.html", "in-process", async (page) => {
        const seen = {
          steps: await stepCells(page),
          findings: await page.locator("#findings li").allTextContents(),
          errors: (await attributes(page, "#errors polyline", "points")).map(pointCount),
        };
        expect(seen.steps).to.deep.equal([
          ["passed", "1", "10%", "passed"],
          ["passed", "2", "25%", "passed"],
          ["failed", "3", "50%", "up-failed"],
          ["not-run", "4", "75%", "not run"],
          ["not-run", "5", "100%", "not run"],
        ]);
        expect(seen.findings.some((f) => /^step 3 \(50%\), up-failed on green: pulumi up failed at 50%/.test(f)), seen.findings.join("\n")).to.equal(true);
        expect(seen.findings.some((f) => /^rolled back at step 3 \(50%\): pulumi up failed at 50%/.test(f)), seen.findings.join("\n")).to.equal(true);
        expect(seen.errors).to.deep.equal([2, 2]);
      });
    });

    it("embeds the screenshots of a browser gate run after a step too (verification.browserGate.everyStep), labelled with the step", async () => {
      // This rollout's gate ran once, before any traffic; a stack with everyStep records one per step the same way.
      const report = JSON.parse(readFileSync(completedReport(), "utf8")) as DeployReport;
      report.steps[1].browserGate = report.browserGate;
      const from = path.join(e2e.stateDir, "report-every-step.json");
      writeFileSync(from, JSON.stringify(report));
      await rendered(from, "every-step.html", "in-process", async (page) => {
        const alts = await attributes(page, "#screenshots img", "alt");
        expect(alts.filter((a) => a?.endsWith("after step 2 (25%)"))).to.have.length(2);
        expect(alts.filter((a) => a?.endsWith("before any viewer traffic"))).to.have.length(2);
        expect(await page.locator("h2", { hasText: "Browser gate" }).textContent()).to.match(/^Browser gate: passed before any viewer traffic \((iframe|top-level)\); passed after step 2$/);
      });
    });

    it("refuses a missing or invalid report, a foreign file at --out and an --out it cannot write: exit 2, one line, nothing written", async () => {
      const dir = e2e.stateDir;
      const invalid = path.join(dir, "invalid.json");
      writeFileSync(invalid, '{"result": "succeeded", ');
      const notAReport = path.join(dir, "status.json");
      writeFileSync(notAReport, JSON.stringify({ stack: "local", stable: "green" }));
      const foreign = path.join(dir, "notes.html");
      writeFileSync(foreign, "my notes\n");
      const cases: { from: string; out: string; says: RegExp }[] = [
        { from: path.join(dir, "missing.json"), out: path.join(dir, "a.html"), says: /^--from = ".*missing\.json": expected a readable JSON report from bluegreen deploy --json \(ENOENT\)$/ },
        { from: invalid, out: path.join(dir, "b.html"), says: /^--from = ".*invalid\.json": expected JSON from bluegreen deploy --json or promote --json \(.+\)$/ },
        { from: notAReport, out: path.join(dir, "c.html"), says: /^--from = ".*status\.json": expected a report of bluegreen deploy --json or promote --json; its result is missing \(/ },
        { from: completedReport(), out: foreign, says: /^--out = ".*notes\.html": expected a new file or a page bluegreen report wrote; it exists and is not one \(nothing overwritten\)$/ },
        { from: completedReport(), out: path.join(dir, "no-such-folder", "d.html"), says: /^--out = ".*no-such-folder\/d\.html": expected a file path that can be written \(ENOENT\)$/ },
      ];
      // Through the CLI (a child process each) for one bad --from and one bad --out; the others in this process.
      const [fromCli, outCli] = await Promise.all([cases[0], cases[3]].map((c) => e2e.cli(["report", "--from", c.from, "--out", c.out])));
      for (const [res, c] of [[fromCli, cases[0]], [outCli, cases[3]]] as const) {
        expect(res.code, res.stderr).to.equal(2);
        expect(res.stderr.split("\n").filter((l) => l !== ""), res.stderr).to.have.length(1);
        expect(res.stderr.trim().replace(/^bluegreen: /, "")).to.match(c.says);
      }
      for (const c of cases) {
        let refused: unknown;
        try {
          writeHtmlReport(c);
        } catch (err) {
          refused = err;
        }
        expect(exitCodeOf(refused), String(refused)).to.equal(2);
        expect((refused as Error).message).to.match(c.says);
        if (c.out !== foreign) expect(existsSync(c.out), c.out).to.equal(false);
      }
      expect(readFileSync(foreign, "utf8")).to.equal("my notes\n");
    });
  });
});
