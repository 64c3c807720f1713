// Human progress on stderr (a live step table on a TTY, plain lines otherwise; NO_COLOR honoured), one JSON report
// on stdout with --json, and a Markdown job summary appended to $GITHUB_STEP_SUMMARY when it is set.
// https://docs.github.com/en/actions/writing-workflows/choosing-what-your-workflow-does/workflow-commands-for-github-actions#adding-a-job-summary
import { appendFileSync } from "node:fs";
import type { DeployReport, Progress, ProgressEvent, StepReport } from "./rollout";

export interface OutputOptions {
  json: boolean;
  stderr?: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean };
  stdout?: { write(s: string): boolean };
  env?: NodeJS.ProcessEnv;
}

function colors(env: NodeJS.ProcessEnv, tty: boolean) {
  // https://no-color.org: any non-empty NO_COLOR disables colour.
  const on = tty && !env.NO_COLOR;
  const wrap = (code: number) => (s: string) => (on ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { green: wrap(32), red: wrap(31), yellow: wrap(33), dim: wrap(2), bold: wrap(1) };
}

function stepLine(s: StepReport, total: number): string {
  const m = s.metrics;
  const per = m
    ? (["blue", "green"] as const).map((slot) => `${slot} ${m[slot].requests} req ${(100 * m[slot].errorRate).toFixed(1)}% err p95 ${m[slot].p95Ms.toFixed(1)} ms`).join(" | ")
    : "";
  return `step ${s.index + 1}/${total}: weight ${String(s.weight).padStart(3)}%  observed ${s.observedShare.toFixed(1).padStart(5)}% of ${s.viewerSamples} viewers  ${s.verdict}${per ? `  (${per})` : ""}`;
}

export class Reporter implements Progress {
  private readonly err: NonNullable<OutputOptions["stderr"]>;
  private readonly out: NonNullable<OutputOptions["stdout"]>;
  private readonly env: NodeJS.ProcessEnv;
  private readonly tty: boolean;
  private readonly c: ReturnType<typeof colors>;
  private tableLines = 0;
  private readonly rows: string[] = [];

  constructor(private readonly opts: OutputOptions) {
    this.err = opts.stderr ?? process.stderr;
    this.out = opts.stdout ?? process.stdout;
    this.env = opts.env ?? process.env;
    this.tty = Boolean((this.err as { isTTY?: boolean }).isTTY) && !this.env.CI;
    this.c = colors(this.env, this.tty);
  }

  emit(event: ProgressEvent): void {
    switch (event.kind) {
      case "info":
        this.line(this.c.dim(event.message));
        break;
      case "step": {
        const text = stepLine(event.step, event.total);
        const coloured = event.step.verdict === "passed" ? this.c.green(text) : event.step.verdict === "inconclusive" ? this.c.yellow(text) : this.c.red(text);
        this.rows.push(coloured);
        this.redrawTable();
        break;
      }
      case "rollback":
        this.line(this.c.red(`rolled back: ${event.rollback.reason} (traffic restored in ${event.rollback.restoreMs} ms)`));
        break;
    }
  }

  /** On a TTY the step rows form a table redrawn in place; elsewhere each row is printed once. */
  private redrawTable(): void {
    if (!this.tty) {
      this.err.write(this.rows[this.rows.length - 1] + "\n");
      return;
    }
    if (this.tableLines > 0) this.err.write(`\u001b[${this.tableLines}A\u001b[J`);
    this.err.write(this.rows.join("\n") + "\n");
    this.tableLines = this.rows.length;
  }

  private line(text: string): void {
    this.tableLines = 0;
    this.err.write(text + "\n");
  }

  /** The final report: JSON on stdout when asked, a summary line on stderr, and the GitHub job summary. */
  finish(report: object, summaryMarkdown: string, headline: string): void {
    if (this.opts.json) this.out.write(JSON.stringify(report, null, 2) + "\n");
    this.err.write(this.c.bold(headline) + "\n");
    if (this.env.GITHUB_STEP_SUMMARY) appendFileSync(this.env.GITHUB_STEP_SUMMARY, summaryMarkdown + "\n");
  }
}

export function deploySummaryMarkdown(r: DeployReport): string {
  const head = `### bluegreen deploy ${r.stack}: ${r.release} on ${r.slot} — ${r.result}`;
  const rows = r.steps.map((s) => `| ${s.weight}% | ${s.observedShare.toFixed(1)}% | ${s.verdict} | ${s.metrics ? (100 * s.metrics[r.slot].errorRate).toFixed(1) + "%" : "-"} | ${s.metrics ? s.metrics[r.slot].p95Ms.toFixed(1) : "-"} |`);
  const table = ["| weight | observed | verdict | new-slot errors | new-slot p95 ms |", "|---:|---:|---|---:|---:|", ...rows].join("\n");
  const rb = r.rollback ? `\n\n**Rolled back** at ${r.rollback.weight}%: ${r.rollback.reason} (restored in ${r.rollback.restoreMs} ms)` : "";
  return `${head}\n\n${table}${rb}\n\nDuration: ${(r.durationMs / 1000).toFixed(1)} s`;
}
