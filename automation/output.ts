// Human progress on stderr (a live step table on a terminal, plain lines in CI or a pipe; NO_COLOR honoured), one JSON report
// on stdout with --json, and the GitHub job summary (jobSummary.ts) once the command's exit code is known.
import { JobSummary } from "./jobSummary";
import type { TrafficPlan } from "./plan";
import type { BakeProgress, Progress, ProgressEvent, StepReport } from "./rollout";

export interface OutputOptions {
  json: boolean;
  /** The command as typed (`deploy`, `promote`), for the job summary's title. */
  command?: string;
  stderr?: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean; columns?: number; rows?: number };
  stdout?: { write(s: string): boolean };
  env?: NodeJS.ProcessEnv;
}

function colors(env: NodeJS.ProcessEnv, tty: boolean) {
  // https://no-color.org: any non-empty NO_COLOR disables colour (the Reporter then prints plain lines as well).
  const on = tty && !env.NO_COLOR;
  const wrap = (code: number) => (s: string) => (on ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { green: wrap(32), red: wrap(31), yellow: wrap(33), dim: wrap(2), bold: wrap(1) };
}

const SLOTS = ["blue", "green"] as const;

/**
 * Each slot's figures for a step, whole or condensed; a slot nothing was aimed at (the other slot on a stack's first
 * release) has none to show.
 */
function figures(m: StepReport["metrics"], form: "whole" | "short"): string {
  if (!m) return "";
  const measured = SLOTS.filter((slot) => m[slot].requests > 0);
  return form === "whole"
    ? measured.map((slot) => `${slot} ${m[slot].requests} req ${(100 * m[slot].errorRate).toFixed(1)}% err p95 ${m[slot].p95Ms.toFixed(1)} ms`).join(" | ")
    : measured.map((slot) => `${slot} ${(100 * m[slot].errorRate).toFixed(1)}% ${m[slot].p95Ms.toFixed(0)}ms`).join("  ");
}

/** One line per step, for logs (CI, a pipe): printed once, never redrawn. */
function stepLine(s: StepReport, total: number): string {
  const per = figures(s.metrics, "whole");
  return `step ${s.index + 1}/${total}: weight ${String(s.weight).padStart(3)}%  observed ${s.observedShare.toFixed(1).padStart(5)}% of ${s.viewerSamples} viewers  ${s.verdict}${per ? `  (${per})` : ""}`;
}

/** The first of `forms` (widest first) that fits `width` columns, else the last one cut to fit. */
function fit(forms: string[], width: number): string {
  const found = forms.find((f) => [...f].length <= width);
  if (found !== undefined) return found;
  const chars = [...forms[forms.length - 1]];
  return chars.slice(0, Math.max(0, width - 1)).join("") + "…";
}

/** Splits a log line at spaces into rows of at most `width` columns (a word longer than that is cut). */
function wrapWords(text: string, width: number): string[] {
  const rows: string[] = [];
  let row = "";
  for (const word of text.split(" ")) {
    const candidate = row === "" ? word : `${row} ${word}`;
    if ([...candidate].length <= width) row = candidate;
    else {
      if (row !== "") rows.push(row);
      row = word;
      while ([...row].length > width) {
        rows.push([...row].slice(0, width).join(""));
        row = [...row].slice(width).join("");
      }
    }
  }
  rows.push(row);
  return rows;
}

const span = (from: number, to: number) => (from === to ? `step ${from}` : `steps ${from}-${to}`);

function clock(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

type Row = { state: "pending" } | { state: "baking"; bake: BakeProgress; receivedAt: number } | { state: "done"; step: StepReport } | { state: "not-run" } | { state: "interrupted" };

/**
 * The live view of a rollout on a terminal: every planned step is one row, redrawn in place below the log (a bake
 * counts down and counts its probes and errors as they come), each row cut to the terminal's width so that none
 * wraps (a wrapped row would throw the cursor-up count off). ANSI/VT100 cursor controls: CUU `ESC[nA` and ED `ESC[J`
 * (https://invisible-island.net/xterm/ctlseqs/ctlseqs.html).
 */
class LiveTable {
  private rows: Row[] = [];
  private plan: TrafficPlan | undefined;
  /** Terminal rows the table takes now: the cursor goes up this many to redraw it. */
  private drawn = 0;
  private ticker: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;

  constructor(
    private readonly err: NonNullable<OutputOptions["stderr"]>,
    private readonly c: ReturnType<typeof colors>,
  ) {}

  private get width(): number {
    // One column spare: some terminals wrap a row that fills the last column.
    const columns = (this.err as { columns?: number }).columns || process.stdout.columns || 80;
    return Math.max(20, columns - 1);
  }

  start(plan: TrafficPlan): void {
    this.plan = plan;
    this.rows = plan.steps.map(() => ({ state: "pending" }));
    this.draw([]);
  }

  get active(): boolean {
    return this.plan !== undefined;
  }

  bake(bake: BakeProgress): void {
    if (!this.plan) return;
    this.rows[bake.index] = { state: "baking", bake, receivedAt: Date.now() };
    // Probes arrive thousands a second on a fast edge: redraw at most every 100 ms, and every second regardless, so
    // the countdown moves while probes are slow.
    this.pending ??= setTimeout(() => {
      this.pending = undefined;
      this.draw([]);
    }, 100).unref();
    this.ticker ??= setInterval(() => this.draw([]), 1000).unref();
  }

  step(step: StepReport): void {
    if (!this.plan) return;
    this.rows[step.index] = { state: "done", step };
    this.stopTimers();
    this.draw([]);
  }

  /** The rollout is over: a step left mid-bake (a signal, an abort) is marked interrupted, those not reached not run. */
  end(): void {
    if (!this.plan) return;
    this.rows = this.rows.map((r) => (r.state === "done" ? r : r.state === "baking" ? { state: "interrupted" } : { state: "not-run" }));
    this.stopTimers();
    this.draw([]);
    this.plan = undefined;
    this.drawn = 0;
  }

  /** Log lines go above the table, word-wrapped to the width so that the table below them stays countable. */
  log(text: string, colour: (s: string) => string): void {
    this.draw(wrapWords(text, this.width).map(colour));
  }

  private stopTimers(): void {
    clearTimeout(this.pending);
    clearInterval(this.ticker);
    this.pending = this.ticker = undefined;
  }

  private draw(logLines: string[]): void {
    const rows = this.plan ? this.render() : [];
    // One write per frame: up to the table's first row, clear to the end of the screen, log, table.
    let out = this.drawn > 0 ? `\u001b[${this.drawn}A\r\u001b[J` : "";
    for (const line of logLines) out += line + "\n";
    for (const row of rows) out += row + "\n";
    this.drawn = rows.length;
    if (out !== "") this.err.write(out);
  }

  private render(): string[] {
    const plan = this.plan!;
    const w = this.width;
    const total = plan.steps.length;
    const head = fit(
      [
        `${plan.release} → ${plan.candidate}${plan.bootstrap ? " (first release)" : ` (stable ${plan.stable})`}: ${total} step${total === 1 ? "" : "s"}, bake ${clock(plan.bakeMs)} each`,
        `${plan.release} → ${plan.candidate}: ${total} steps`,
      ],
      w,
    );
    const rows = this.rows.map((row, i) => this.row(row, i, plan.steps[i], total, w));
    // The cursor cannot go up past the top of the screen: a table taller than the terminal shows the rows around the
    // step in progress, the steps above and below summed up in a line each.
    const room = Math.max(1, ((this.err as { rows?: number }).rows || 24) - 4);
    if (rows.length <= room + 2) return [this.c.bold(head), ...rows];
    const active = this.rows.findIndex((r) => r.state !== "done");
    const start = Math.max(0, Math.min((active < 0 ? rows.length : active) - 1, rows.length - room));
    const end = start + room;
    const passed = this.rows.slice(0, start).filter((r) => r.state === "done" && r.step.verdict === "passed").length;
    const later = this.rows[end]?.state === "not-run" ? "not run" : "pending";
    return [
      this.c.bold(head),
      ...(start > 0 ? [this.c.dim(fit([`  ${span(1, start)}: ${passed} passed`], w))] : []),
      ...rows.slice(start, end),
      ...(end < rows.length ? [this.c.dim(fit([`  ${span(end + 1, rows.length)}: ${later}`], w))] : []),
    ];
  }

  private row(row: Row, i: number, weight: number, total: number, w: number): string {
    const at = `${i + 1}/${total} ${String(weight).padStart(3)}%`;
    switch (row.state) {
      case "pending":
        return this.c.dim(fit([`  ${at}  pending`], w));
      case "not-run":
        return this.c.dim(fit([`  ${at}  not run`], w));
      case "interrupted":
        return this.c.red(fit([`✗ ${at}  interrupted in its bake`], w));
      case "baking": {
        const b = row.bake;
        const left = clock(b.bakeMs - b.elapsedMs - (Date.now() - row.receivedAt));
        const check = b.check > 1 ? `recheck ${b.check}, ` : "";
        const errs = `errors blue ${b.errors.blue} green ${b.errors.green}${b.unattributed > 0 ? ` other ${b.unattributed}` : ""}`;
        return this.c.bold(
          fit(
            [
              `▸ ${at}  baking: ${check}${left} left, ${b.probes.done}/${b.probes.planned} probes, ${errs}`,
              `▸ ${at}  ${check}${left} left  ${b.probes.done}/${b.probes.planned}  ${errs.replace("errors ", "err ")}`,
              `▸ ${at}  ${left}  ${b.probes.done}/${b.probes.planned}  err ${b.errors.blue}/${b.errors.green}`,
            ],
            w,
          ),
        );
      }
      case "done": {
        const s = row.step;
        const m = s.metrics;
        const mark = s.verdict === "passed" ? "✓" : s.verdict === "inconclusive" ? "?" : "✗";
        const full = figures(m, "whole");
        const short = figures(m, "short");
        const share = s.observedShare.toFixed(1).padStart(5);
        // A step that never probed (its `up` failed, the edge never served its weight) has a cause, not measurements.
        const text = m
          ? fit(
              [
                `${mark} ${at}  observed ${share}% of ${s.viewerSamples} viewers  ${s.verdict}  ${full}`,
                `${mark} ${at}  obs ${share}%  ${s.verdict}  ${short}`,
                `${mark} ${at}  ${share}%  ${s.verdict}`,
              ],
              w,
            )
          : fit([`${mark} ${at}  ${s.verdict}${s.findings[0] ? `: ${s.findings[0].message}` : ""}`], w);
        return s.verdict === "passed" ? this.c.green(text) : s.verdict === "inconclusive" ? this.c.yellow(text) : this.c.red(text);
      }
    }
  }
}

export class Reporter implements Progress {
  private readonly err: NonNullable<OutputOptions["stderr"]>;
  private readonly out: NonNullable<OutputOptions["stdout"]>;
  private readonly env: NodeJS.ProcessEnv;
  private readonly c: ReturnType<typeof colors>;
  /** Set on a terminal (not in CI, not NO_COLOR, not TERM=dumb): the step table redraws in place; elsewhere each line prints once. */
  private readonly live: LiveTable | undefined;
  /** What the command learns as it runs, for the job summary written when it exits. */
  readonly summary: JobSummary;
  /** Plain output: steps in the plan, and the last whole minute of a bake reported (step/check). */
  private planned: number | undefined;
  private bakeMinute: { key: string; minute: number } | undefined;

  constructor(private readonly opts: OutputOptions) {
    this.err = opts.stderr ?? process.stderr;
    this.out = opts.stdout ?? process.stdout;
    this.env = opts.env ?? process.env;
    // NO_COLOR asks for output without escape codes (https://no-color.org), and issue 14 keeps it on plain lines: a
    // screen reader or a log scraper on a terminal gets each line once, not a table redrawn in place.
    const tty = Boolean((this.err as { isTTY?: boolean }).isTTY) && !this.env.CI && !this.env.NO_COLOR && this.env.TERM !== "dumb";
    this.c = colors(this.env, tty);
    this.live = tty ? new LiveTable(this.err, this.c) : undefined;
    this.summary = new JobSummary({ command: opts.command ?? "" });
  }

  emit(event: ProgressEvent): void {
    switch (event.kind) {
      case "info":
        this.line(event.message, this.c.dim);
        break;
      case "plan":
        this.planned = event.plan.steps.length;
        this.live?.start(event.plan);
        break;
      case "bake":
        if (this.live) this.live.bake(event.bake);
        else this.bakeLine(event.bake);
        break;
      case "step":
        if (this.live?.active) this.live.step(event.step);
        else {
          const text = stepLine(event.step, event.total);
          const verdict = event.step.verdict;
          this.line(text, verdict === "passed" ? this.c.green : verdict === "inconclusive" ? this.c.yellow : this.c.red);
        }
        break;
      case "rollback":
        this.live?.end();
        this.line(`rolled back: ${event.rollback.reason} (traffic restored in ${event.rollback.restoreMs} ms)`, this.c.red);
        break;
    }
  }

  /**
   * In a log (CI, a pipe) a bake says how it is going once a minute of it has passed, by the rollout's own clock: a
   * production bake is 5 minutes per step, and a CI log that says nothing for that long looks hung.
   */
  private bakeLine(b: BakeProgress): void {
    const key = `${b.index}/${b.check}`;
    const minute = Math.floor(b.elapsedMs / 60_000);
    if (minute === 0 || (this.bakeMinute?.key === key && this.bakeMinute.minute >= minute)) return;
    this.bakeMinute = { key, minute };
    const check = b.check > 1 ? `, recheck ${b.check}` : "";
    this.line(`step ${b.index + 1}/${this.planned ?? "?"} (${b.weight}%${check}): baking, ${clock(b.bakeMs - b.elapsedMs)} left, ${b.probes.done}/${b.probes.planned} probes, errors blue ${b.errors.blue} green ${b.errors.green}${b.unattributed > 0 ? ` other ${b.unattributed}` : ""}`, this.c.dim);
  }

  private line(text: string, colour: (s: string) => string): void {
    if (this.live) this.live.log(text, colour);
    else this.err.write(colour(text) + "\n");
  }

  /** The final report: JSON on stdout when asked, a summary line on stderr; `summaryMarkdown` goes into the job summary. */
  finish(report: object, summaryMarkdown: string, headline: string): void {
    this.live?.end();
    if (this.opts.json) this.out.write(JSON.stringify(report, null, 2) + "\n");
    this.err.write(this.c.bold(headline) + "\n");
    if (summaryMarkdown !== "") this.summary.note({ section: summaryMarkdown });
  }

  /** The command is over, with this exit code: the job summary is written ($GITHUB_STEP_SUMMARY), whatever the code. */
  close(exitCode: number, error?: unknown, opts: { summary: boolean } = { summary: true }): void {
    this.live?.end();
    if (opts.summary) this.summary.write(this.env, exitCode, error);
  }
}
