// The analysis verdict of one traffic step: a pure function of the probe samples and the thresholds.
// Modelled on Argo Rollouts' AnalysisRun (successful / failed / inconclusive) and Flagger's failure threshold.
// Every rule that reads an estimate asks whether the excess is beyond its sampling noise at `confidence`; the model,
// its parameters and its measured error rates are in docs/ANALYSIS.md.
import type { RolloutConfig, Slot } from "../infra/config";

/** One probe as the prober saw it. `slot`/`release` come from the x-bluegreen-* response headers. */
export interface Sample {
  /** HTTP status; 0 when no response came back at all (refused, reset, timed out): a transport failure. */
  status: number;
  latencyMs: number;
  slot?: Slot;
  release?: string;
  /** True when the request went through the preview route (it measures a slot, not the split). */
  preview: boolean;
  /** Security headers missing from this response, if any. */
  missingHeaders?: string[];
}

export interface SlotMetrics {
  /**
   * Preview probes aimed at the slot that got an HTTP response, and the errors among them: the sample its error rate is
   * judged on. Fresh viewers are not in it: their errors lose the slot header while their successes keep it, so
   * counting them would dilute the rate of exactly the slot that fails.
   */
  requests: number;
  errors: number;
  errorRate: number;
  /** Latency over every response known to be the slot's (preview, and fresh viewers carrying its header). */
  p50Ms: number;
  p95Ms: number;
  /** Releases seen in the x-bluegreen-release header, with counts. */
  releases: Record<string, number>;
}

/** Probes no slot can be held to account for. */
export interface UnattributedMetrics {
  /** All probes of the step, and those that got no HTTP response. */
  probes: number;
  transportFailures: number;
  /** Fresh-viewer HTTP responses (and preview ones aimed at no known slot), and the errors among them without a slot header. */
  viewerResponses: number;
  untaggedErrors: number;
}

export type Verdict = "passed" | "failed" | "inconclusive";

export interface Finding {
  metric: "error-rate" | "error-ratio" | "p95-latency" | "release" | "samples" | "security-headers" | "smoke" | "share" | "transport" | "unattributed" | "up-failed";
  /** The slot the finding is about; absent when it belongs to no slot (transport failures, untagged viewer errors). */
  slot?: Slot;
  message: string;
}

export interface StepAnalysis {
  verdict: Verdict;
  findings: Finding[];
  metrics: Record<Slot, SlotMetrics>;
  unattributed: UnattributedMetrics;
  /** Share of fresh (non-preview) viewers served by the new slot, in percent of those whose slot is known. */
  observedShare: number;
  viewerSamples: number;
  /** This check's preview probes, to pass on (merged) as `earlier` to the rollout's next checks. */
  evidence: PreviewEvidence;
}

/** What the preview probes aimed at one slot measured: the sample its error rate and the cumulative p95 are judged on. */
export interface SlotEvidence {
  requests: number;
  errors: number;
  /** Ascending. */
  latencies: Float64Array;
}

export type PreviewEvidence = Record<Slot, SlotEvidence>;

export function emptyEvidence(): PreviewEvidence {
  return { blue: { requests: 0, errors: 0, latencies: new Float64Array(0) }, green: { requests: 0, errors: 0, latencies: new Float64Array(0) } };
}

/** Adds up two checks' preview evidence (latencies merged in order, so nothing is sorted again). */
export function mergeEvidence(a: PreviewEvidence, b: PreviewEvidence): PreviewEvidence {
  const one = (x: SlotEvidence, y: SlotEvidence): SlotEvidence => ({ requests: x.requests + y.requests, errors: x.errors + y.errors, latencies: mergeSorted(x.latencies, y.latencies) });
  return { blue: one(a.blue, b.blue), green: one(a.green, b.green) };
}

function mergeSorted(x: Float64Array, y: Float64Array): Float64Array {
  const out = new Float64Array(x.length + y.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < x.length && j < y.length) out[k++] = x[i] <= y[j] ? x[i++] : y[j++];
  while (i < x.length) out[k++] = x[i++];
  while (j < y.length) out[k++] = y[j++];
  return out;
}

export type Thresholds = Pick<RolloutConfig, "minSamples" | "maxErrorRate" | "maxErrorRatio" | "maxP95Ratio" | "maxTransportErrorRate" | "confidence" | "minErrors">;

/** Latency differences below this are loopback/network jitter, not a regression (a loaded two-core machine's local p95 reaches tens of ms). */
export const P95_FLOOR_MS = 50;

/**
 * The router puts viewers in 1-percent buckets by a hash of the request id; a deviation this small is the hash's
 * unevenness, not a routing fault, however many viewers were probed (the split bench sees up to 1.9 pp).
 */
export const SHARE_FLOOR_PP = 2;

/** Findings that are facts, not estimates: one check proves them, so they never wait for a second one. */
const CERTAIN: ReadonlySet<Finding["metric"]> = new Set(["release", "security-headers", "smoke", "up-failed"]);

/**
 * Every probe asks for the health path, which a release must serve: a 4xx is as much a failure as a 5xx (through
 * OAC a missing object answers 403).
 */
function isHttpError(status: number): boolean {
  return status >= 400;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/**
 * Judges one check of a step. Attribution: a preview probe belongs to the slot it was aimed at (the preview route
 * reaches no other), a fresh viewer to the slot its header names. A transport failure (status 0) is no slot's
 * response, and a fresh viewer's error without a slot header (CloudFront runs no viewer-response function on an
 * origin's 4xx/5xx) could be either slot's: both are judged as their own categories against absolute limits, never
 * charged to one slot.
 */
export function analyseStep(input: {
  samples: readonly Sample[];
  stable: Slot;
  candidate: Slot;
  expected: Record<Slot, string>;
  thresholds: Thresholds;
  /** Slot each preview sample was aimed at, same order as `samples` (undefined for viewer samples). */
  aimedAt?: readonly (Slot | undefined)[];
  /** The candidate's configured weight in percent; when given, the observed share is judged against it. */
  weight?: number;
  /** The preview evidence of the rollout's earlier checks (see RolloutJudge). */
  earlier?: PreviewEvidence;
}): StepAnalysis {
  const { stable, candidate, expected, thresholds } = input;
  const alpha = 1 - thresholds.confidence;
  const acc = { blue: new SlotAccumulator(), green: new SlotAccumulator() };
  const unattributed: UnattributedMetrics = { probes: input.samples.length, transportFailures: 0, viewerResponses: 0, untaggedErrors: 0 };
  let viewersOnCandidate = 0;
  let viewersTagged = 0;
  const missing = new Set<string>();
  input.samples.forEach((s, i) => {
    for (const h of s.missingHeaders ?? []) missing.add(h);
    if (s.status === 0) {
      unattributed.transportFailures++;
      return;
    }
    const aim = s.preview ? input.aimedAt?.[i] : undefined;
    if (aim !== undefined) {
      acc[aim].addAimed(s);
      return;
    }
    unattributed.viewerResponses++;
    if (s.slot === undefined) {
      if (isHttpError(s.status)) unattributed.untaggedErrors++;
      return;
    }
    acc[s.slot].addTagged(s);
    if (!s.preview) {
      viewersTagged++;
      if (s.slot === candidate) viewersOnCandidate++;
    }
  });
  const sorted = { blue: acc.blue.sortedLatencies(), green: acc.green.sortedLatencies() };
  const metrics = { blue: acc.blue.metrics(sorted.blue), green: acc.green.metrics(sorted.green) };
  const observedShare = viewersTagged === 0 ? 0 : (100 * viewersOnCandidate) / viewersTagged;
  const findings: Finding[] = [];
  const fail = (f: Finding) => findings.push(f);
  const n = metrics[candidate];
  const s = metrics[stable];
  // On a fresh stack the release goes straight onto the stable slot: there is nothing to compare it with.
  const compared = candidate !== stable && s.requests > 0 && n.requests > 0;

  for (const slot of candidate === stable ? [candidate] : [candidate, stable]) {
    const wrong = Object.keys(metrics[slot].releases).filter((r) => r !== expected[slot]);
    if (wrong.length > 0) fail({ metric: "release", slot, message: `${slot} served release ${wrong.join(", ")}, expected ${expected[slot]}` });
  }
  if (missing.size > 0) fail({ metric: "security-headers", slot: candidate, message: `responses lack ${[...missing].join(", ")}` });

  // Each rule reads this check, and (with `earlier`) every preview probe of the rollout so far: the preview route is
  // the same at every weight, so its evidence adds up, and a check of 300 probes alone holds too few errors to tell 2
  // percent from 0.1 percent at 99 percent confidence. This check alone still counts, so errors that start only under
  // a later step's load are not diluted by the clean steps before.
  const current = { blue: acc.blue.evidence(), green: acc.green.evidence() };
  const scopes: { label: string; e: PreviewEvidence; sorted: Record<Slot, ArrayLike<number>> }[] = [{ label: "", e: current, sorted }];
  if (input.earlier && input.earlier[candidate].requests > 0) {
    const e = mergeEvidence(input.earlier, current);
    scopes.push({ label: " over the rollout's preview probes so far", e, sorted: { blue: e.blue.latencies, green: e.green.latencies } });
  }
  const found = new Set<Finding["metric"]>();
  const once = (f: Finding) => {
    if (found.has(f.metric)) return;
    found.add(f.metric);
    fail(f);
  };
  for (const { label, e, sorted: lat } of scopes) {
    const c = e[candidate];
    const st = e[stable];
    const rate = (x: SlotEvidence) => `${pct(x.requests === 0 ? 0 : x.errors / x.requests)} (${x.errors} of ${x.requests})`;
    if (c.errors >= thresholds.minErrors && binomialTailAtLeast(c.errors, c.requests, thresholds.maxErrorRate) < alpha) {
      const r = c.requests === 0 ? 0 : c.errors / c.requests;
      once({ metric: "error-rate", slot: candidate, message: `${candidate} error rate ${pct(r)} is above the limit ${pct(thresholds.maxErrorRate)} (${c.errors} of ${c.requests}${label}, at ${pct(thresholds.confidence)} confidence)` });
    }
    if (!compared || st.requests === 0) continue;
    if (c.errors >= thresholds.minErrors) {
      const p = rateRatioPValue(c.errors, c.requests, st.errors, st.requests, thresholds.maxErrorRatio);
      if (p < alpha) once({ metric: "error-ratio", slot: candidate, message: `${candidate} error rate ${rate(c)}${label} is above ${thresholds.maxErrorRatio}x ${stable}'s ${rate(st)}, p = ${p.toPrecision(2)}` });
    }
    const p95c = percentile(lat[candidate], 95);
    const p95s = percentile(lat[stable], 95);
    if (p95c > thresholds.maxP95Ratio * Math.max(p95s, P95_FLOOR_MS)) {
      const p = upperQuantileShiftPValue(lat[candidate], lat[stable], thresholds.maxP95Ratio, 0.95, alpha);
      if (p < alpha) once({ metric: "p95-latency", slot: candidate, message: `${candidate} p95 ${p95c.toFixed(1)} ms${label} is above ${thresholds.maxP95Ratio}x ${stable}'s ${p95s.toFixed(1)} ms (compared with at least ${P95_FLOOR_MS} ms), p = ${p.toPrecision(2)}` });
    }
  }
  if (input.weight !== undefined && viewersTagged > 0) {
    const share = shareFinding(viewersOnCandidate, viewersTagged, input.weight, alpha);
    if (share) fail({ metric: "share", slot: candidate, message: `${candidate} served ${observedShare.toFixed(1)}% of ${viewersTagged} fresh viewers at weight ${input.weight}% (${share})` });
  }
  const t = unattributed;
  if (t.transportFailures >= thresholds.minErrors && binomialTailAtLeast(t.transportFailures, t.probes, thresholds.maxTransportErrorRate) < alpha) {
    fail({ metric: "transport", message: `${t.transportFailures} of ${t.probes} probes got no response (${pct(t.transportFailures / t.probes)}), above the limit ${pct(thresholds.maxTransportErrorRate)}: the probes cannot measure the slots` });
  }
  if (t.untaggedErrors >= thresholds.minErrors && binomialTailAtLeast(t.untaggedErrors, t.viewerResponses, thresholds.maxErrorRate) < alpha) {
    fail({ metric: "unattributed", message: `${t.untaggedErrors} of ${t.viewerResponses} fresh viewers got an error without a slot header (${pct(t.untaggedErrors / t.viewerResponses)}), above the limit ${pct(thresholds.maxErrorRate)}` });
  }

  const viewerSamples = unattributed.viewerResponses;
  const evidence = current;
  if (findings.length > 0) return { verdict: "failed", findings, metrics, unattributed, observedShare, viewerSamples, evidence };
  const short = (candidate === stable ? [candidate] : [candidate, stable]).filter((slot) => metrics[slot].requests < thresholds.minSamples);
  for (const slot of short) {
    findings.push({ metric: "samples", slot, message: `${slot} has ${metrics[slot].requests} responses, fewer than ${thresholds.minSamples}` });
  }
  return { verdict: short.length > 0 ? "inconclusive" : "passed", findings, metrics, unattributed, observedShare, viewerSamples, evidence };
}

class SlotAccumulator {
  /** Fresh viewers' latencies apart from the preview ones: each is sorted once, and the two merged. */
  private readonly viewerLatencies: number[] = [];
  private readonly aimedLatencies: number[] = [];
  private aimedSorted: Float64Array | undefined;
  private requests = 0;
  private errors = 0;
  private readonly releases: Record<string, number> = {};

  /** A preview probe aimed at this slot: its outcome says nothing about where it went, so it counts for the error rate. */
  addAimed(s: Sample): void {
    this.requests++;
    if (isHttpError(s.status)) this.errors++;
    this.aimedLatencies.push(s.latencyMs);
    this.addRelease(s);
  }

  /** A fresh viewer's response carrying this slot's header. */
  addTagged(s: Sample): void {
    this.viewerLatencies.push(s.latencyMs);
    this.addRelease(s);
  }

  private addRelease(s: Sample): void {
    if (s.release !== undefined) this.releases[s.release] = (this.releases[s.release] ?? 0) + 1;
  }

  evidence(): SlotEvidence {
    this.aimedSorted ??= Float64Array.from(this.aimedLatencies).sort();
    return { requests: this.requests, errors: this.errors, latencies: this.aimedSorted };
  }

  sortedLatencies(): Float64Array {
    this.aimedSorted ??= Float64Array.from(this.aimedLatencies).sort();
    return mergeSorted(this.aimedSorted, Float64Array.from(this.viewerLatencies).sort());
  }

  metrics(sorted: Float64Array): SlotMetrics {
    const { requests, errors } = this;
    return { requests, errors, errorRate: requests === 0 ? 0 : errors / requests, p50Ms: percentile(sorted, 50), p95Ms: percentile(sorted, 95), releases: this.releases };
  }
}

/** Two-sided exact binomial test of the observed share against the weight, with SHARE_FLOOR_PP as the least deviation that counts. */
function shareFinding(onCandidate: number, viewers: number, weight: number, alpha: number): string | undefined {
  const deviationPp = Math.abs((100 * onCandidate) / viewers - weight);
  if (deviationPp <= SHARE_FLOOR_PP) return undefined;
  const p = weight / 100;
  const low = binomialTailAtLeast(viewers - onCandidate, viewers, 1 - p);
  const high = binomialTailAtLeast(onCandidate, viewers, p);
  const pValue = Math.min(1, 2 * Math.min(low, high));
  return pValue < alpha ? `${deviationPp.toFixed(1)} pp off, p = ${pValue.toPrecision(2)}` : undefined;
}

// ---- Exact tail probabilities. Sample sizes reach 10^5, so terms are built from log-gamma and a ratio recurrence. ----

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13). */
function lnGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

function lnChoose(n: number, k: number): number {
  return lnGamma(n + 1) - lnGamma(k + 1) - lnGamma(n - k + 1);
}

/** P(X ≥ k) for X ~ Binomial(n, p). */
export function binomialTailAtLeast(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n || p <= 0) return 0;
  if (p >= 1) return 1;
  const q = 1 - p;
  let term = Math.exp(lnChoose(n, k) + k * Math.log(p) + (n - k) * Math.log(q));
  let sum = term;
  for (let i = k; i < n && term > sum * 1e-16; i++) {
    term *= ((n - i) / (i + 1)) * (p / q);
    sum += term;
  }
  return Math.min(1, sum);
}

/** P(X ≥ k) for X ~ Hypergeometric: `draws` taken from `population` holding `successes`. */
export function hypergeometricTailAtLeast(k: number, population: number, successes: number, draws: number): number {
  const hi = Math.min(successes, draws);
  const lo = Math.max(0, draws - (population - successes));
  if (k <= lo) return 1;
  if (k > hi) return 0;
  let term = Math.exp(lnChoose(successes, k) + lnChoose(population - successes, draws - k) - lnChoose(population, draws));
  let sum = term;
  for (let i = k; i < hi && term > sum * 1e-16; i++) {
    term *= ((successes - i) * (draws - i)) / ((i + 1) * (population - successes - draws + i + 1));
    sum += term;
  }
  return Math.min(1, sum);
}

/**
 * One-sided exact test that the candidate's error rate is more than `ratio` times the stable slot's. Errors are rare,
 * so each slot's count is close to Poisson; given the total, the candidate's count is then binomial with
 * π = ratio·n₁ / (ratio·n₁ + n₂) when the rates stand exactly at the limit (the conditional test for two Poisson rates,
 * Przyborowski and Wilenski 1940). It weighs unequal sample sizes, and a stable slot with no errors is no special case.
 */
export function rateRatioPValue(candidateErrors: number, candidateRequests: number, stableErrors: number, stableRequests: number, ratio: number): number {
  const pi = (ratio * candidateRequests) / (ratio * candidateRequests + stableRequests);
  return binomialTailAtLeast(candidateErrors, candidateErrors + stableErrors, pi);
}

/**
 * One-sided test that the candidate's q-quantile is above `ratio` times the stable slot's: the stable latencies are
 * scaled by `ratio`, both samples pooled, and the pooled top (1 − q) share taken; if the two quantiles were equal, the
 * number of candidate latencies among them would be hypergeometric (Mood's median test moved to the upper tail).
 * Ties count for the stable slot, so constant latencies never make a regression. Inputs are ascending.
 *
 * With few samples the top 5 percent is one or two latencies, and no outcome could reach the confidence asked for (20
 * samples: p ≥ 0.5 whatever happens), so a 300 ms regression would pass. When `alpha` is given, the pooled top is widened
 * to the smallest that could reach it (at most half the pool): the test then judges a lower upper quantile, and keeps
 * its false-alarm rate.
 */
export function upperQuantileShiftPValue(candidate: ArrayLike<number>, stable: ArrayLike<number>, ratio: number, q: number, alpha?: number): number {
  const total = candidate.length + stable.length;
  let top = Math.max(1, Math.round((1 - q) * total));
  if (alpha !== undefined) {
    while (top < Math.floor(total / 2) && top < candidate.length && hypergeometricTailAtLeast(top, total, candidate.length, top) >= alpha) top++;
  }
  let i = candidate.length - 1;
  let j = stable.length - 1;
  let fromCandidate = 0;
  for (let taken = 0; taken < top; taken++) {
    if (i >= 0 && (j < 0 || candidate[i] > ratio * stable[j])) {
      fromCandidate++;
      i--;
    } else j--;
  }
  return hypergeometricTailAtLeast(fromCandidate, total, top, candidate.length);
}

/** What one check means for the step: go on, bake and judge again at the same weight, or roll back. */
export type CheckOutcome = "passed" | "recheck" | "failed";

/**
 * Judges a rollout's checks one after another, for the rollout loop. Within a step, a failing check is baked and judged
 * again at the same weight, and the step rolls back only when `failureThreshold` checks in a row fail (Flagger's
 * `threshold`), each on fresh samples: a noise finding then needs to recur, while a real fault recurs by itself. A
 * passing check ends the step. Facts (a wrong release, missing security headers) roll back at once. Across steps it
 * adds up the preview evidence that analyseStep reads as `earlier`.
 */
export class RolloutJudge {
  private failing = 0;
  private evidence: PreviewEvidence = emptyEvidence();

  constructor(private readonly config: Pick<RolloutConfig, "failureThreshold" | "inconclusive">) {}

  /** The preview evidence of every check so far, for analyseStep's `earlier`. */
  get earlier(): PreviewEvidence {
    return this.evidence;
  }

  /** Failing checks in a row so far in this step. */
  get consecutiveFailures(): number {
    return this.failing;
  }

  /** A new step: its streak starts from zero (the evidence is kept). */
  startStep(): void {
    this.failing = 0;
  }

  record(analysis: Pick<StepAnalysis, "verdict" | "findings"> & { evidence?: PreviewEvidence }): CheckOutcome {
    if (analysis.evidence) this.evidence = mergeEvidence(this.evidence, analysis.evidence);
    const failed = analysis.verdict === "failed" || (analysis.verdict === "inconclusive" && this.config.inconclusive === "fail");
    if (!failed) {
      this.failing = 0;
      return "passed";
    }
    this.failing++;
    if (analysis.findings.some((f) => CERTAIN.has(f.metric))) return "failed";
    return this.failing >= this.config.failureThreshold ? "failed" : "recheck";
  }
}

function pct(x: number): string {
  const v = 100 * x;
  return `${v < 1 && v > 0 ? v.toFixed(2) : v.toFixed(1)}%`;
}
