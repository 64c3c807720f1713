// What an operator sees of a real rollout on the local cloud, through the CLI in a child process: the live view on a
// real pseudo-terminal, rendered by a terminal emulator (@xterm/headless) at the width the terminal had.
import { Terminal } from "@xterm/headless";
import { expect } from "chai";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { deploy } from "../../automation/deploy";
import { REPO_ROOT } from "../../automation/local/state";
import { Reporter } from "../../automation/output";
import { RELEASES_DIR, startE2E, type E2E } from "./support";

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

describe("what the operator sees of a rollout", function () {
  this.timeout(180_000);
  let e2e: E2E;

  before(async () => {
    e2e = await startE2E();
    // The first release, in this process (a warm program worker): blue becomes the stable slot.
    const quiet = new Reporter({ json: false, stderr: { write: () => true }, env: {} });
    await deploy({ stack: "local", artifact: path.join(RELEASES_DIR, "1.0.0"), release: "1.0.0", json: false, dryRun: false }, quiet, { cloud: e2e.cloud });
  });

  after(async () => {
    await e2e?.close();
  });

  describe("the live view on a terminal", () => {
    it("redraws one row per step in place at 80 columns, none wrapped, the bake counting down with its probes and errors", async () => {
      const run = await runOnTerminal(e2e, 80, ["deploy", "--stack", "local", "--artifact", path.join(RELEASES_DIR, "2.0.0"), "--release", "2.0.0", "--bake", "1s", "--json"], path.join(e2e.stateDir, "deploy-2.0.0.json"));
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
      for (const frame of run.bakeFrames) expect(frame).to.match(/^▸ \d\/5 +\d+% {2}baking: \d+:\d\d left, \d+\/2000 probes, errors blue \d+ green \d+/);
      expect(new Set(run.bakeFrames.map((f) => /(\d+)\/2000 probes/.exec(f)![1])).size).to.be.at.least(2);
      // Colour on a terminal without NO_COLOR.
      expect(run.raw).to.include("\u001b[32m");
    });

    it("shows the failed step, the steps not run and the revert at 200 columns, each step once", async () => {
      // The staging up and the first two steps' ups succeed; the third step's up fails: reverted at 50 percent.
      e2e.cloud.failUps("local", { skip: 3, fail: 1 });
      try {
        const run = await runOnTerminal(e2e, 200, ["deploy", "--stack", "local", "--artifact", e2e.release("3.0.0"), "--release", "3.0.0", "--bake", "0s"], path.join(e2e.stateDir, "deploy-3.0.0.out"));
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
      } finally {
        e2e.cloud.clearFaults("local");
      }
    });
  });
});
