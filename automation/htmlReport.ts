// `bluegreen report --from report.json --out report.html`: one self-contained page from a deploy or promote report
// (`--json`): a timeline of the weights and the observed share, the error rate and p95 of each slot per step, the
// findings, and the browser gate's screenshots embedded as data URIs. Nothing is fetched: styles and charts are inline
// (SVG), and the page's Content-Security-Policy allows no other source.
// https://developer.mozilla.org/docs/Web/HTTP/Headers/Content-Security-Policy
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { z } from "zod";
import { otherSlot, type Slot } from "../infra/config";
import { UsageError } from "./errors";

/** Marks a page this command wrote: an existing --out without it is someone else's file and is never overwritten. */
const GENERATOR = "bluegreen report";
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const SLOT_COLOUR: Record<Slot, string> = { blue: "#2563eb", green: "#15803d" };

const slotMetrics = z.object({ requests: z.number(), errors: z.number(), errorRate: z.number(), p50Ms: z.number(), p95Ms: z.number() });
const slot = z.enum(["blue", "green"]);
/** The part of a DeployReport the page reads; older reports lack `plan` and `thresholds`. */
const browserGate = z.object({
  verdict: z.string(),
  embedding: z.string(),
  findings: z.array(z.object({ message: z.string() })),
  notes: z.array(z.string()),
  screenshots: z.object({ blue: z.string().optional(), green: z.string().optional() }),
});
const reportSchema = z.object({
  result: z.enum(["succeeded", "rolled-back", "failed"]),
  stack: z.string(),
  release: z.string(),
  slot,
  stable: slot,
  plan: z.object({ steps: z.array(z.number()), bakeMs: z.number() }).optional(),
  steps: z.array(
    z.object({
      index: z.number().int().min(0),
      weight: z.number(),
      verdict: z.string(),
      observedShare: z.number(),
      viewerSamples: z.number(),
      metrics: z.object({ blue: slotMetrics, green: slotMetrics }).nullable(),
      findings: z.array(z.object({ metric: z.string(), slot: slot.optional(), message: z.string() })),
      /** The browser gate after this step, when the stack runs it at every step (verification.browserGate.everyStep). */
      browserGate: browserGate.optional(),
    }),
  ),
  rollback: z.object({ reason: z.string(), step: z.number().nullable(), weight: z.number() }).nullable(),
  durationMs: z.number(),
  browserGate: browserGate.optional(),
  /** Where viewers are served and how to see the idle slot (reports since `bluegreen open`). */
  viewer: z.object({ url: z.string(), idle: z.object({ slot, release: z.string().nullable(), url: z.string().nullable() }) }).optional(),
});

type ReportInput = z.infer<typeof reportSchema>;

/** A browser gate's screenshot of one slot, as a data URI. */
interface Screenshot {
  slot: Slot;
  /** When the gate ran: before any viewer traffic, or after a step. */
  when: string;
  dataUri: string;
}

export interface HtmlReportResult {
  out: string;
  bytes: number;
  /** How many screenshots were embedded, and those the report names that could not be read as PNG files. */
  screenshots: { embedded: number; missing: string[] };
}

/** Reads the report, renders the page and writes it; bad input is a UsageError naming the flag, and writes nothing. */
export function writeHtmlReport(opts: { from: string; out: string }): HtmlReportResult {
  const report = readReport(opts.from);
  if (existsSync(opts.out) && !isOurPage(opts.out)) {
    throw new UsageError(`--out = ${JSON.stringify(opts.out)}: expected a new file or a page bluegreen report wrote; it exists and is not one (nothing overwritten)`);
  }
  const embedded: Screenshot[] = [];
  const missing: string[] = [];
  const gates = [
    { when: "before any viewer traffic", gate: report.browserGate },
    ...report.steps.map((s) => ({ when: `after step ${s.index + 1} (${s.weight}%)`, gate: s.browserGate })),
  ];
  for (const { when, gate } of gates) {
    for (const [s, file] of Object.entries(gate?.screenshots ?? {}) as [Slot, string | undefined][]) {
      if (file === undefined) continue;
      const png = readPng(file);
      if (png) embedded.push({ slot: s, when, dataUri: `data:image/png;base64,${png.toString("base64")}` });
      else missing.push(file);
    }
  }
  const html = renderHtmlReport(report, embedded, missing);
  try {
    writeFileSync(opts.out, html);
  } catch (err) {
    throw new UsageError(`--out = ${JSON.stringify(opts.out)}: expected a file path that can be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return { out: opts.out, bytes: Buffer.byteLength(html), screenshots: { embedded: embedded.length, missing } };
}

function readReport(file: string): ReportInput {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`--from = ${JSON.stringify(file)}: expected a readable JSON report from bluegreen deploy --json (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--from = ${JSON.stringify(file)}: expected JSON from bluegreen deploy --json or promote --json (${(err as Error).message})`);
  }
  const parsed = reportSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // Name what the file holds at the first bad field (a rollback report's result is "restored", a status has none).
    const found = issue.path.reduce<unknown>((v, key) => (v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[key as PropertyKey] : undefined), json);
    const where = issue.path.length > 0 ? `its ${issue.path.join(".")} is ${found === undefined ? "missing" : JSON.stringify(found).slice(0, 60)}` : "it is not an object";
    throw new UsageError(`--from = ${JSON.stringify(file)}: expected a report of bluegreen deploy --json or promote --json; ${where} (${issue.message})`);
  }
  return parsed.data;
}

function isOurPage(file: string): boolean {
  try {
    return readFileSync(file, "utf8").slice(0, 1000).includes(`<meta name="generator" content="${GENERATOR}">`);
  } catch {
    return false;
  }
}

/** The file's bytes when it is a PNG (the gate writes PNGs; anything else a report names is not embedded). */
function readPng(file: string): Buffer | undefined {
  try {
    const bytes = readFileSync(file);
    return bytes.subarray(0, 8).equals(PNG_SIGNATURE) ? bytes : undefined;
  } catch {
    return undefined;
  }
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "-");

interface Series {
  name: string;
  colour: string;
  kind: "bar" | "line";
  /** One value per category; null where the step did not run or measured nothing. */
  values: (number | null)[];
}

/** A small SVG chart: categories along x, a 0..max y axis with four grid lines, bars and lines, a legend. */
function chart(id: string, title: string, unit: string, categories: string[], series: Series[]): string {
  const w = 640;
  const h = 240;
  const pad = { left: 48, right: 12, top: 28, bottom: 36 };
  const plotW = w - pad.left - pad.right;
  const plotH = h - pad.top - pad.bottom;
  const values = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = niceMax(Math.max(0, ...values));
  const x = (i: number) => pad.left + (plotW * (i + 0.5)) / categories.length;
  const y = (v: number) => pad.top + plotH - (plotH * v) / max;
  const band = plotW / categories.length;
  const bars = series.filter((s) => s.kind === "bar");
  const parts: string[] = [];
  for (let g = 0; g <= 4; g++) {
    const v = (max * g) / 4;
    parts.push(`<line x1="${pad.left}" x2="${w - pad.right}" y1="${y(v)}" y2="${y(v)}" class="grid"/><text x="${pad.left - 6}" y="${y(v) + 4}" class="tick" text-anchor="end">${Number(v.toPrecision(3))}</text>`);
  }
  categories.forEach((c, i) => parts.push(`<text x="${x(i)}" y="${h - pad.bottom + 16}" class="tick" text-anchor="middle">${esc(c)}</text>`));
  bars.forEach((s, b) => {
    const bw = (band * 0.6) / bars.length;
    s.values.forEach((v, i) => {
      if (v === null) return;
      const bx = x(i) - band * 0.3 + b * bw;
      parts.push(`<rect x="${bx.toFixed(1)}" y="${y(v).toFixed(1)}" width="${bw.toFixed(1)}" height="${(pad.top + plotH - y(v)).toFixed(1)}" fill="${s.colour}" opacity="0.35"><title>${esc(`${s.name} ${categories[i]}: ${fmt(v, 2)} ${unit}`)}</title></rect>`);
    });
  });
  for (const s of series.filter((x) => x.kind === "line")) {
    const points = s.values.map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter((p): p is string => p !== null);
    if (points.length > 0) parts.push(`<polyline points="${points.join(" ")}" fill="none" stroke="${s.colour}" stroke-width="2" data-series="${esc(s.name)}"/>`);
    s.values.forEach((v, i) => {
      if (v !== null) parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3.5" fill="${s.colour}"><title>${esc(`${s.name} ${categories[i]}: ${fmt(v, 2)} ${unit}`)}</title></circle>`);
    });
  }
  const legend = series.map((s, i) => `<g transform="translate(${pad.left + i * 150},12)"><rect width="12" height="12" y="-10" fill="${s.colour}" opacity="${s.kind === "bar" ? 0.35 : 1}"/><text x="16" class="legend">${esc(s.name)}</text></g>`).join("");
  return `<figure id="${id}"><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(title)}" xmlns="http://www.w3.org/2000/svg">${legend}${parts.join("")}<text x="12" y="${pad.top + plotH / 2}" class="tick" transform="rotate(-90 12 ${pad.top + plotH / 2})" text-anchor="middle">${esc(unit)}</text></svg></figure>`;
}

/** 1, 2 or 5 times a power of ten, at or above `v` (an axis that starts at 0 and ends on a round number). */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v)!;
}

export function renderHtmlReport(r: ReportInput, screenshots: Screenshot[], missingScreenshots: string[] = []): string {
  const planned = r.plan?.steps ?? r.steps.map((s) => s.weight);
  const byIndex = new Map(r.steps.map((s) => [s.index, s]));
  const categories = planned.map((w, i) => `${i + 1} · ${w}%`);
  const metric = (s: Slot, pick: (m: z.infer<typeof slotMetrics>) => number) =>
    planned.map((_, i) => {
      const m = byIndex.get(i)?.metrics;
      return m && m[s].requests > 0 ? pick(m[s]) : null;
    });
  const slots: Slot[] = r.slot === r.stable && r.result === "succeeded" && r.steps.every((s) => !s.metrics || s.metrics[otherSlot(r.slot)].requests === 0) ? [r.slot] : ["blue", "green"];
  const lineOf = (name: string, values: (number | null)[], s: Slot): Series => ({ name, colour: SLOT_COLOUR[s], kind: "line", values });
  const title = `bluegreen ${r.stack}: ${r.release} on ${r.slot} — ${r.result}`;
  const outcome =
    r.result === "succeeded"
      ? slots.length === 1
        ? `the stack's first release: ${r.slot} is the stable slot`
        : `${r.slot} is now the stable slot; ${otherSlot(r.slot)} keeps the previous release`
      : r.result === "rolled-back"
        ? `traffic is back on ${r.stable}, the stable slot`
        : "the revert did not complete: see bluegreen status";

  const stepRows = planned
    .map((weight, i) => {
      const s = byIndex.get(i);
      if (!s) return `<tr class="not-run"><td>${i + 1}</td><td>${weight}%</td><td>not run</td><td></td>${slots.map(() => "<td></td><td></td>").join("")}</tr>`;
      const m = s.metrics;
      const cells = slots.map((x) => (m && m[x].requests > 0 ? `<td>${fmt(100 * m[x].errorRate, 2)}% (${m[x].errors}/${m[x].requests})</td><td>${fmt(m[x].p95Ms)} ms</td>` : "<td></td><td></td>")).join("");
      return `<tr class="${s.verdict === "passed" ? "passed" : "failed"}"><td>${i + 1}</td><td>${weight}%</td><td>${esc(s.verdict)}</td><td>${m ? `${fmt(s.observedShare)}% of ${s.viewerSamples}` : ""}</td>${cells}</tr>`;
    })
    .join("\n");

  const findings = [
    ...r.steps.flatMap((s) => s.findings.map((f) => `step ${s.index + 1} (${s.weight}%), ${f.metric}${f.slot ? ` on ${f.slot}` : ""}: ${f.message}`)),
    ...(r.rollback ? [`${r.result === "failed" ? "revert did not complete" : "rolled back"}${r.rollback.step === null ? " before any traffic moved" : ` at step ${r.rollback.step + 1} (${r.rollback.weight}%)`}: ${r.rollback.reason}`] : []),
    ...(r.browserGate?.findings.map((f) => `browser gate: ${f.message}`) ?? []),
    ...(r.browserGate?.notes.map((n) => `browser gate note: ${n}`) ?? []),
    ...r.steps.flatMap((s) => s.browserGate?.findings.map((f) => `browser gate after step ${s.index + 1} (${s.weight}%): ${f.message}`) ?? []),
  ];

  const shots = screenshots
    .map((shot) => `<figure class="shot"><img src="${shot.dataUri}" alt="${esc(`${shot.slot} slot as the browser gate rendered it ${shot.when}`)}"><figcaption>${shot.slot}${shot.slot === r.slot ? " (candidate)" : " (stable)"}, ${esc(shot.when)}</figcaption></figure>`)
    .join("");
  const gateVerdicts = [r.browserGate ? `${r.browserGate.verdict} before any viewer traffic (${r.browserGate.embedding})` : "", ...r.steps.map((s) => (s.browserGate ? `${s.browserGate.verdict} after step ${s.index + 1}` : ""))].filter((v) => v !== "");

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="${GENERATOR}">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1000px; padding: 0 16px; color: #111827; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.result { display: inline-block; padding: 2px 8px; border-radius: 4px; color: #fff; background: ${r.result === "succeeded" ? "#15803d" : r.result === "rolled-back" ? "#b45309" : "#b91c1c"}; }
.meta { color: #4b5563; margin: 4px 0 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 12px; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg { width: 100%; height: auto; border: 1px solid #e5e7eb; border-radius: 4px; }
.grid { stroke: #e5e7eb; } .tick { font-size: 11px; fill: #6b7280; } .legend { font-size: 12px; fill: #374151; }
table { border-collapse: collapse; width: 100%; } th, td { border-bottom: 1px solid #e5e7eb; padding: 4px 8px; text-align: right; } th:nth-child(3), td:nth-child(3) { text-align: left; }
tr.failed td { background: #fef2f2; } tr.not-run td { color: #9ca3af; }
.shots { display: flex; gap: 16px; flex-wrap: wrap; } .shot img { max-width: 460px; border: 1px solid #e5e7eb; }
</style>
</head>
<body>
<header>
<h1>bluegreen ${esc(r.stack)}: ${esc(r.release)} on ${r.slot} <span class="result">${esc(r.result)}</span></h1>
<p class="meta">${outcome}; ${planned.length} step${planned.length === 1 ? "" : "s"} planned, ${r.steps.length} run${r.plan ? `, bake ${fmt(r.plan.bakeMs / 1000, 0)} s each` : ""}; ${fmt(r.durationMs / 1000)} s</p>
${
  r.viewer
    ? `<p class="meta" id="links">viewers: <a href="${esc(r.viewer.url)}">${esc(r.viewer.url)}</a>${r.viewer.idle.url ? `; idle slot ${r.viewer.idle.slot} (${esc(r.viewer.idle.release ?? "")}): <a href="${esc(r.viewer.idle.url)}">${esc(r.viewer.idle.url)}</a>` : ""}</p>`
    : ""
}
</header>
<section id="timeline-section">
<h2>Timeline</h2>
<div class="charts">
${chart("timeline", `Traffic on ${r.slot}: weight and observed share`, "%", categories, [
  { name: "weight (planned)", colour: "#6b7280", kind: "bar", values: planned.map((w) => w) },
  { name: "observed share", colour: SLOT_COLOUR[r.slot], kind: "line", values: planned.map((_, i) => (byIndex.get(i)?.metrics ? byIndex.get(i)!.observedShare : null)) },
])}
${chart("errors", "Error rate per slot", "%", categories, slots.map((s) => lineOf(`${s} error rate`, metric(s, (m) => 100 * m.errorRate), s)))}
${chart("p95", "p95 latency per slot", "ms", categories, slots.map((s) => lineOf(`${s} p95`, metric(s, (m) => m.p95Ms), s)))}
</div>
</section>
<section>
<h2>Steps</h2>
<table id="steps">
<thead><tr><th>step</th><th>weight</th><th>verdict</th><th>observed share</th>${slots.map((s) => `<th>${s} errors</th><th>${s} p95</th>`).join("")}</tr></thead>
<tbody>
${stepRows}
</tbody>
</table>
</section>
<section>
<h2>Findings</h2>
${findings.length > 0 ? `<ul id="findings">${findings.map((f) => `<li>${esc(f)}</li>`).join("")}</ul>` : `<p id="findings">none</p>`}
</section>
${
  gateVerdicts.length > 0
    ? `<section>
<h2>Browser gate: ${esc(gateVerdicts.join("; "))}</h2>
<div class="shots" id="screenshots">${shots || "<p>no screenshots</p>"}</div>
${missingScreenshots.length > 0 ? `<p>Not embedded (missing or not PNG): ${missingScreenshots.map(esc).join(", ")}</p>` : ""}
</section>`
    : ""
}
</body>
</html>
`;
}
