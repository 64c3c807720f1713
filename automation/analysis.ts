// The analysis verdict of one traffic step: a pure function of the probe samples and the thresholds.
// Modelled on Argo Rollouts' AnalysisRun (successful / failed / inconclusive) and CodeDeploy's alarm-based stop.
import type { RolloutConfig, Slot } from "../infra/config";

/** One HTTP response as the prober saw it. `slot`/`release` come from the x-bluegreen-* response headers. */
export interface Sample {
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
  requests: number;
  errors: number;
  errorRate: number;
  p50Ms: number;
  p95Ms: number;
  /** Releases seen in the x-bluegreen-release header, with counts. */
  releases: Record<string, number>;
}

export type Verdict = "passed" | "failed" | "inconclusive";

export interface Finding {
  metric: "error-rate" | "error-ratio" | "p95-latency" | "release" | "samples" | "security-headers" | "smoke" | "share" | "up-failed";
  slot: Slot;
  message: string;
}

export interface StepAnalysis {
  verdict: Verdict;
  findings: Finding[];
  metrics: Record<Slot, SlotMetrics>;
  /** Share of fresh (non-preview) viewers served by the new slot, in percent. */
  observedShare: number;
  viewerSamples: number;
}

export type Thresholds = Pick<RolloutConfig, "minSamples" | "maxErrorRate" | "maxErrorRatio" | "maxP95Ratio">;

/** Latency differences below this are loopback/network jitter, not a regression (a loaded two-core machine's local p95 reaches tens of ms). */
export const P95_FLOOR_MS = 50;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/**
 * Every probe asks for the health path, which a release must serve: a 4xx is as much a failure as a 5xx (through
 * OAC a missing object answers 403), and status 0 means no response at all.
 */
function isError(status: number): boolean {
  return status === 0 || status >= 400;
}

function slotMetrics(samples: readonly Sample[]): SlotMetrics {
  const latencies = samples.map((s) => s.latencyMs).sort((a, b) => a - b);
  const errors = samples.filter((s) => isError(s.status)).length;
  const releases: Record<string, number> = {};
  for (const s of samples) if (s.release !== undefined) releases[s.release] = (releases[s.release] ?? 0) + 1;
  return {
    requests: samples.length,
    errors,
    errorRate: samples.length === 0 ? 0 : errors / samples.length,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    releases,
  };
}

function attributed(samples: readonly Sample[], slot: Slot): Sample[] {
  return samples.filter((s) => s.slot === slot);
}

/**
 * Judges a step. Errors without a slot header (the edge or origin failed before our function tagged the response)
 * are charged to the slot the request was aimed at when it was a preview request, and otherwise to the new slot:
 * an unattributable failure must never make a bad release look healthy.
 */
export function analyseStep(input: {
  samples: readonly Sample[];
  stable: Slot;
  candidate: Slot;
  expected: Record<Slot, string>;
  thresholds: Thresholds;
  /** Slot each preview sample was aimed at, same order as `samples` (undefined for viewer samples). */
  aimedAt?: readonly (Slot | undefined)[];
}): StepAnalysis {
  const { stable, candidate, expected, thresholds } = input;
  const tagged = input.samples.map((s, i) => (s.slot !== undefined ? s : { ...s, slot: input.aimedAt?.[i] ?? candidate }));
  const metrics = { blue: slotMetrics(attributed(tagged, "blue")), green: slotMetrics(attributed(tagged, "green")) };
  const viewers = tagged.filter((s) => !s.preview);
  const observedShare = viewers.length === 0 ? 0 : (100 * viewers.filter((s) => s.slot === candidate).length) / viewers.length;
  const findings: Finding[] = [];
  const fail = (f: Finding) => findings.push(f);
  const n = metrics[candidate];
  const s = metrics[stable];

  for (const slot of [candidate, stable]) {
    const wrong = Object.keys(metrics[slot].releases).filter((r) => r !== expected[slot]);
    if (wrong.length > 0) fail({ metric: "release", slot, message: `${slot} served release ${wrong.join(", ")}, expected ${expected[slot]}` });
  }
  if (n.errorRate > thresholds.maxErrorRate) {
    fail({ metric: "error-rate", slot: candidate, message: `${candidate} error rate ${pct(n.errorRate)} is above the limit ${pct(thresholds.maxErrorRate)}` });
  }
  if (s.requests > 0 && n.errors > 0 && n.errorRate > thresholds.maxErrorRatio * s.errorRate) {
    fail({ metric: "error-ratio", slot: candidate, message: `${candidate} error rate ${pct(n.errorRate)} is above ${thresholds.maxErrorRatio}x ${stable}'s ${pct(s.errorRate)}` });
  }
  if (s.requests > 0 && n.requests > 0 && n.p95Ms > thresholds.maxP95Ratio * Math.max(s.p95Ms, P95_FLOOR_MS)) {
    fail({ metric: "p95-latency", slot: candidate, message: `${candidate} p95 ${n.p95Ms.toFixed(1)} ms is above ${thresholds.maxP95Ratio}x ${stable}'s ${s.p95Ms.toFixed(1)} ms (compared with at least ${P95_FLOOR_MS} ms)` });
  }
  const missing = new Set(tagged.flatMap((x) => x.missingHeaders ?? []));
  if (missing.size > 0) fail({ metric: "security-headers", slot: candidate, message: `responses lack ${[...missing].join(", ")}` });

  if (findings.length > 0) return { verdict: "failed", findings, metrics, observedShare, viewerSamples: viewers.length };
  const short = [candidate, stable].filter((slot) => metrics[slot].requests < thresholds.minSamples);
  for (const slot of short) {
    findings.push({ metric: "samples", slot, message: `${slot} has ${metrics[slot].requests} samples, fewer than ${thresholds.minSamples}` });
  }
  return { verdict: short.length > 0 ? "inconclusive" : "passed", findings, metrics, observedShare, viewerSamples: viewers.length };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
