// The GitHub job summary of one CLI run, written for every exit code: the command adds what it learns as it goes
// (the stack's slots and thresholds, the plan, the viewer URL, approvers, the report), and whatever it got to is
// rendered with the outcome once the exit code is known. GitHub renders the Markdown, Mermaid blocks included.
// https://docs.github.com/en/actions/writing-workflows/choosing-what-your-workflow-does/workflow-commands-for-github-actions#adding-a-job-summary
// https://docs.github.com/en/get-started/writing-on-github/working-with-advanced-formatting/creating-diagrams
import { appendFileSync } from "node:fs";
import type { RolloutConfig, Slot, StackConfig } from "../infra/config";
import type { Approver } from "./approvals";
import type { Viewing } from "./open";
import { EXIT } from "./errors";
import type { DeployReport, StepReport } from "./rollout";

const SLOTS = ["blue", "green"] as const;

export interface SummaryFacts {
  /** The command as typed: `deploy`, `promote`, `local reset`, ... */
  command: string;
  stack?: string;
  /** promote: the stack the release comes from. */
  from?: string;
  release?: string;
  /** The stack's routing and thresholds as the command read them, before it changed anything. */
  config?: Pick<StackConfig, "slots" | "stable" | "weights" | "rollout">;
  plan?: { candidate: Slot; steps: number[]; bakeMs: number };
  /** Where viewers are served, and once the rollout is over how to see the idle slot (open.ts). */
  viewer?: { url: string; idle?: Viewing["idle"] };
  approvers?: Approver[];
  report?: DeployReport;
  /** What a command that is not a rollout has to say (status, verify, history, rollback). */
  section?: string;
}

const OUTCOME: Record<number, string> = {
  [EXIT.ok]: "done",
  [EXIT.rolledBack]: "rolled back, traffic is back on the stable slot",
  [EXIT.badInput]: "bad input, nothing changed",
  [EXIT.operatorNeeded]: "operator needed",
};
const ICON: Record<number, string> = { [EXIT.ok]: "✅", [EXIT.rolledBack]: "↩️", [EXIT.badInput]: "⛔", [EXIT.operatorNeeded]: "🚨" };

export class JobSummary {
  private facts: SummaryFacts;
  private written = false;

  constructor(facts: SummaryFacts) {
    this.facts = { ...facts };
  }

  note(facts: Partial<SummaryFacts>): void {
    this.facts = { ...this.facts, ...facts };
  }

  /** Appends the summary to $GITHUB_STEP_SUMMARY when it is set; once per run. */
  write(env: NodeJS.ProcessEnv, exitCode: number, error?: unknown): void {
    if (this.written || !env.GITHUB_STEP_SUMMARY) return;
    this.written = true;
    appendFileSync(env.GITHUB_STEP_SUMMARY, this.markdown(env, exitCode, error) + "\n");
  }

  markdown(env: NodeJS.ProcessEnv, exitCode: number, error?: unknown): string {
    const f = this.facts;
    const r = f.report;
    const out: string[] = [title(f, exitCode), links(f, env)];
    if (error !== undefined) out.push(`> **exit ${exitCode}, ${OUTCOME[exitCode] ?? "failed"}:** ${escapeMarkdown(error instanceof Error ? error.message : String(error))}`);
    if (f.config) out.push(slotTable(f.config, r, f.plan?.candidate));
    if (f.approvers && f.approvers.length > 0) {
      out.push(`**Approved by** ${f.approvers.map((a) => `${escapeMarkdown(a.login)} (${a.roles.map(escapeMarkdown).join(", ")}; ${escapeMarkdown(a.source)})`).join(", ")}`);
    }
    const planned = r?.plan.steps ?? f.plan?.steps;
    if (planned) {
      out.push(stepTable(planned, r?.steps ?? [], r ? r.result !== "succeeded" : false));
      const charts = r ? mermaidCharts(r) : "";
      if (charts) out.push(charts);
    } else if (f.config && f.command !== "rollback") {
      out.push(`Planned steps (stack config): ${f.config.rollout.steps.map((s) => `${s}%`).join(", ")}; none ran.`);
    }
    if (r?.rollback) {
      const at = r.rollback.step === null ? "before any traffic moved" : `at step ${r.rollback.step + 1} (${r.rollback.weight}%)`;
      out.push(`**${r.result === "failed" ? "Revert did not complete" : "Rolled back"}** ${at}: ${escapeMarkdown(r.rollback.reason)} (restored revision ${r.rollback.restoredRevision} in ${r.rollback.restoreMs} ms)`);
    }
    const gates = r ? [{ when: "before any viewer traffic", g: r.browserGate }, ...r.steps.map((s) => ({ when: `after step ${s.index + 1}`, g: s.browserGate }))] : [];
    const ran = gates.filter((x) => x.g !== undefined);
    if (ran.length > 0) {
      const one = ({ when, g }: (typeof ran)[number]) => `${g!.verdict} ${when} (${g!.embedding}${g!.findings.length > 0 ? `; ${g!.findings.map((x) => escapeMarkdown(x.message)).join("; ")}` : ""})`;
      out.push(`**Browser gate**: ${ran.map(one).join("; ")}`);
    }
    if (f.section) out.push(f.section);
    const thresholds = r?.thresholds ?? f.config?.rollout;
    if (thresholds) out.push(thresholdTable(thresholds, r?.plan.bakeMs ?? f.plan?.bakeMs));
    if (r) out.push(`Duration: ${(r.durationMs / 1000).toFixed(1)} s`);
    return out.filter((s) => s !== "").join("\n\n");
  }
}

function title(f: SummaryFacts, exitCode: number): string {
  const where = f.command === "promote" && f.from ? `${code(f.from)} → ${code(f.stack ?? "?")}` : f.stack ? code(f.stack) : "";
  const what = f.release ? `: ${escapeMarkdown(f.release)}${f.plan ? ` on ${f.plan.candidate}` : ""}` : "";
  const result = f.report && exitCode !== EXIT.badInput ? f.report.result : (OUTCOME[exitCode] ?? "failed");
  const command = ["bluegreen", f.command === "promote" ? "promotion" : escapeMarkdown(f.command), where].filter((w) => w !== "").join(" ");
  return `### ${ICON[exitCode] ?? "❌"} ${command}${what} — ${result} (exit ${exitCode})`;
}

/** The viewer URL, the CI run and the commit, from GitHub's default variables. https://docs.github.com/en/actions/reference/variables-reference#default-environment-variables */
function links(f: SummaryFacts, env: NodeJS.ProcessEnv): string {
  const parts: string[] = [];
  if (f.viewer) parts.push(`**Viewers:** ${f.viewer.url}`);
  const idle = f.viewer?.idle;
  if (idle?.url) parts.push(`**Idle slot** ${idle.slot} (${escapeMarkdown(idle.release ?? "")}): ${idle.url}`);
  const server = env.GITHUB_SERVER_URL || "https://github.com";
  if (env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID) {
    const attempt = env.GITHUB_RUN_ATTEMPT && env.GITHUB_RUN_ATTEMPT !== "1" ? `/attempts/${env.GITHUB_RUN_ATTEMPT}` : "";
    parts.push(`**CI run:** [${env.GITHUB_REPOSITORY} #${env.GITHUB_RUN_ID}](${server}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}${attempt})`);
  }
  if (env.GITHUB_REPOSITORY && env.GITHUB_SHA) parts.push(`**Commit:** [\`${env.GITHUB_SHA.slice(0, 7)}\`](${server}/${env.GITHUB_REPOSITORY}/commit/${env.GITHUB_SHA})`);
  return parts.join(" · ");
}

function slotTable(config: NonNullable<SummaryFacts["config"]>, r: DeployReport | undefined, candidate: Slot | undefined): string {
  const cell = (release: string | undefined, weight: number, role: string) => `${release ? escapeMarkdown(release) : "(none)"} · ${weight}% · ${role}`;
  const after = (slot: Slot): string => {
    if (!r) return "unchanged";
    if (r.result === "failed") return "see `bluegreen status`: the revert did not complete";
    if (r.result === "succeeded") return slot === r.slot ? cell(r.release, 100, "stable") : cell(config.slots[slot].release, 0, "idle, the rollback target");
    return slot === r.slot ? cell(r.release, 0, "idle, rolled back") : cell(config.slots[slot].release, 100, "stable");
  };
  const role = (slot: Slot) => (slot === config.stable ? "stable" : slot === candidate ? "candidate" : "idle");
  return ["| slot | before | after |", "|---|---|---|", ...SLOTS.map((s) => `| ${s} | ${cell(config.slots[s].release, config.weights[s], role(s))} | ${after(s)} |`)].join("\n");
}

const pct = (x: number) => `${(100 * x).toFixed(x > 0 && x < 0.001 ? 2 : 1)}%`;

function stepTable(planned: number[], steps: StepReport[], over: boolean): string {
  const head = ["| step | weight | result | observed share | blue errors | blue p95 | green errors | green p95 |", "|---:|---:|---|---:|---:|---:|---:|---:|"];
  const rows = planned.map((weight, i) => {
    const s = steps.find((x) => x.index === i);
    if (!s) return `| ${i + 1} | ${weight}% | ${over ? "not run" : "pending"} | | | | | |`;
    const m = s.metrics;
    const mark = s.verdict === "passed" ? "✅" : s.verdict === "inconclusive" ? "❔" : "❌";
    const finding = s.verdict !== "passed" && s.findings[0] ? `: ${escapeMarkdown(s.findings[0].message)}` : s.browserGate?.verdict === "failed" ? "; browser gate failed" : "";
    const slot = (x: Slot) => (m && m[x].requests > 0 ? [`${pct(m[x].errorRate)} (${m[x].errors}/${m[x].requests})`, `${m[x].p95Ms.toFixed(1)} ms`] : ["", ""]);
    return `| ${i + 1} | ${weight}% | ${mark} ${s.verdict}${finding} | ${m ? `${s.observedShare.toFixed(1)}% of ${s.viewerSamples}` : ""} | ${slot("blue").join(" | ")} | ${slot("green").join(" | ")} |`;
  });
  return [...head, ...rows].join("\n");
}

/**
 * Three small xychart-beta charts (one y axis each, and no legend: the title names the series) of the steps that
 * measured something. https://mermaid.js.org/syntax/xyChart.html
 */
export function mermaidCharts(r: DeployReport): string {
  const measured = r.steps.filter((s) => s.metrics !== null);
  if (measured.length === 0) return "";
  const candidate = r.slot;
  // The slot compared with: the other one, unless it measured nothing (a stack's first release has no stable slot).
  const other: Slot = candidate === "blue" ? "green" : "blue";
  const stable = measured.some((s) => s.metrics![other].requests > 0) ? other : null;
  const xAxis = `  x-axis "step (weight)" [${measured.map((s) => `"${s.index + 1} (${s.weight}%)"`).join(", ")}]`;
  const series = (values: number[]) => `[${values.map((v) => Number(v.toFixed(2))).join(", ")}]`;
  // An explicit y range: a series of zeros (no errors) would otherwise leave the axis without a scale.
  const top = (values: number[], floor: number) => Number(Math.max(floor, ...values.map((v) => v * 1.2)).toPrecision(2));
  const chart = (heading: string, yAxis: string, yMax: number, bar: number[], line: number[] | null) =>
    ["```mermaid", "xychart-beta", `  title "${heading}"`, xAxis, `  y-axis "${yAxis}" 0 --> ${yMax}`, `  bar ${series(bar)}`, ...(line ? [`  line ${series(line)}`] : []), "```"].join("\n");
  const of = (slot: Slot, pick: (m: NonNullable<StepReport["metrics"]>[Slot]) => number) => measured.map((s) => pick(s.metrics![slot]));
  const errors = [of(candidate, (m) => 100 * m.errorRate), stable ? of(stable, (m) => 100 * m.errorRate) : null] as const;
  const p95 = [of(candidate, (m) => m.p95Ms), stable ? of(stable, (m) => m.p95Ms) : null] as const;
  const vs = stable ? ` (bars), ${stable} (line)` : "";
  return [
    chart(`Traffic on ${candidate}: weight (bars), observed share (line)`, "percent", 100, measured.map((s) => s.weight), measured.map((s) => s.observedShare)),
    chart(`Error rate: ${candidate}${vs}`, "percent", top([...errors[0], ...(errors[1] ?? [])], 1), ...errors),
    chart(`p95 latency: ${candidate}${vs}`, "ms", top([...p95[0], ...(p95[1] ?? [])], 10), ...p95),
  ].join("\n\n");
}

function thresholdTable(t: RolloutConfig, bakeMs: number | undefined): string {
  const rows: [string, string][] = [
    ["steps", t.steps.map((s) => `${s}%`).join(", ")],
    ["bake per step", `${((bakeMs ?? t.bakeSeconds * 1000) / 1000).toFixed(0)} s`],
    ["probes per slot and step", String(t.probesPerStep)],
    ["max error rate", pct(t.maxErrorRate)],
    ["max error ratio (vs stable)", `${t.maxErrorRatio}x`],
    ["max p95 ratio (vs stable)", `${t.maxP95Ratio}x`],
    ["max transport error rate", pct(t.maxTransportErrorRate)],
    ["confidence", String(t.confidence)],
    ["min samples / min errors", `${t.minSamples} / ${t.minErrors}`],
    ["failing checks in a row to roll back", String(t.failureThreshold)],
    ["inconclusive counts as", t.inconclusive],
  ];
  return ["<details><summary>Thresholds</summary>", "", "| setting | value |", "|---|---|", ...rows.map(([k, v]) => `| ${k} | ${v} |`), "", "</details>"].join("\n");
}

function code(s: string): string {
  return `\`${s.replace(/`/g, "'")}\``;
}

/** Messages carry paths and values: keep them from opening tables, links or HTML in the summary. */
function escapeMarkdown(s: string): string {
  return s.replace(/[\\`*_[\]<>|]/g, (c) => `\\${c}`).replace(/\n/g, " ");
}
