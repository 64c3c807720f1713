// The analysis's error rates: the real analyseStep and RolloutJudge judge simulated probe samples, with the production
// stack file's sample sizes and thresholds, 10,000 rollouts per scenario. No network: the figures measure the
// statistics, not the prober. `npx tsx bench/analysis.ts` prints them alone; `npm run bench` adds them to results.json.
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { rolloutSchema, type RolloutConfig, type Slot } from "../infra/config";
import { analyseStep, RolloutJudge, type Sample } from "../automation/analysis";
import { mulberry32 } from "./prng";
import type { Figure } from "./run";

export const TRIALS = 10_000;
export const SEED = 0x5eed14;
const STACK_FILE = path.join(__dirname, "..", "stacks", "Pulumi.production.yaml");

/** Log-normal latency: median 40 ms, σ 0.5 in log space (p95 = 2.3 x the median), the same shape on both slots. */
const LATENCY_MEDIAN_MS = 40;
const LATENCY_SIGMA = 0.5;

export interface Scenario {
  name: string;
  /** Per-probe chance of no response at all, on every probe. */
  dropRate: number;
  errorRate: Record<"stable" | "candidate", number>;
  /** Every candidate latency is this many times what the stable slot's would be (so its p95 is too). */
  latencyFactor: number;
  /** What a trial that rolls back means: a false alarm (healthy candidate) or a detection. */
  kind: "false_rollback_pct" | "detection_pct";
  target: number;
}

export const SCENARIOS: Scenario[] = [
  { name: "false_rollback_pct.drops_1_in_10000", dropRate: 1e-4, errorRate: { stable: 0, candidate: 0 }, latencyFactor: 1, kind: "false_rollback_pct", target: 1 },
  { name: "false_rollback_pct.drops_1_in_2000", dropRate: 5e-4, errorRate: { stable: 0, candidate: 0 }, latencyFactor: 1, kind: "false_rollback_pct", target: 1 },
  { name: "false_rollback_pct.equal_errors_0.3pct", dropRate: 0, errorRate: { stable: 0.003, candidate: 0.003 }, latencyFactor: 1, kind: "false_rollback_pct", target: 1 },
  { name: "detection_pct.errors_2pct_vs_0.1pct", dropRate: 0, errorRate: { stable: 0.001, candidate: 0.02 }, latencyFactor: 1, kind: "detection_pct", target: 99 },
  { name: "detection_pct.p95_1.5x", dropRate: 0, errorRate: { stable: 0, candidate: 0 }, latencyFactor: 1.5, kind: "detection_pct", target: 95 },
];


function normal(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/**
 * Latencies are drawn from a table of 2^16 log-normal values made once per scenario from the seeded generator: an
 * `exp` and two more draws per probe made the simulation, not the analysis, most of the run time.
 */
function latencyTable(rand: () => number): Float64Array {
  return Float64Array.from({ length: 1 << 16 }, () => LATENCY_MEDIAN_MS * Math.exp(LATENCY_SIGMA * normal(rand)));
}

export function productionRollout(): RolloutConfig {
  const doc = parse(readFileSync(STACK_FILE, "utf8")) as { config: Record<string, unknown> };
  return rolloutSchema.parse(doc.config["picasso-widget:rollout"]);
}

export interface ScenarioResult {
  scenario: Scenario;
  rolledBack: number;
  trials: number;
  /** Checks judged per trial, on average (a recheck adds one). */
  checksPerTrial: number;
  /** Rolled-back trials by the step (0-based) where they rolled back. */
  byStep: number[];
}

/**
 * One rollout as the driver runs it (automation/rollout.ts): per step, a bake of `probesPerStep` fresh viewers (split
 * by the weight) and as many preview probes alternating between the slots, judged; a failing check bakes again at the
 * same weight until RolloutJudge passes or fails the step.
 */
export function simulate(scenario: Scenario, rollout: RolloutConfig, trials = TRIALS, seed = SEED): ScenarioResult {
  const rand = mulberry32(seed);
  const stable: Slot = "blue";
  const candidate: Slot = "green";
  const expected = { blue: "1.0.0", green: "2.0.0" };
  const n = rollout.probesPerStep;
  // Samples are rewritten in place for each check: analyseStep keeps no reference to them.
  const samples: Sample[] = Array.from({ length: 2 * n }, (_, i) => ({ status: 200, latencyMs: 0, preview: i >= n }));
  const aimedAt: (Slot | undefined)[] = samples.map((_, i) => (i < n ? undefined : (i - n) % 2 === 0 ? candidate : stable));
  const latencies = latencyTable(rand);
  // One draw decides the outcome: below the drop rate no response, then the slot's error rate among the rest.
  const failBelow = {
    [candidate]: scenario.dropRate + (1 - scenario.dropRate) * scenario.errorRate.candidate,
    [stable]: scenario.dropRate + (1 - scenario.dropRate) * scenario.errorRate.stable,
  } as Record<Slot, number>;
  const probe = (s: Sample, slot: Slot, preview: boolean) => {
    const isCandidate = slot === candidate;
    s.preview = preview;
    s.latencyMs = latencies[(rand() * 65536) | 0] * (isCandidate ? scenario.latencyFactor : 1);
    const u = rand();
    if (u < scenario.dropRate) {
      s.status = 0;
      s.slot = undefined;
      s.release = undefined;
    } else if (u < failBelow[slot]) {
      // CloudFront runs no viewer-response function on an origin's 5xx: the error carries no slot header.
      s.status = 503;
      s.slot = undefined;
      s.release = undefined;
    } else {
      s.status = 200;
      s.slot = slot;
      s.release = expected[slot];
    }
  };
  let rolledBack = 0;
  let checks = 0;
  const byStep = rollout.steps.map(() => 0);
  for (let t = 0; t < trials; t++) {
    let failedAt = -1;
    const judge = new RolloutJudge(rollout);
    for (let step = 0; step < rollout.steps.length && failedAt < 0; step++) {
      const weight = rollout.steps[step];
      judge.startStep();
      for (;;) {
        for (let i = 0; i < n; i++) probe(samples[i], rand() * 100 < weight ? candidate : stable, false);
        for (let i = n; i < 2 * n; i++) probe(samples[i], aimedAt[i] as Slot, true);
        checks++;
        const outcome = judge.record(analyseStep({ samples, stable, candidate, expected, thresholds: rollout, aimedAt, weight, earlier: judge.earlier }));
        if (outcome === "recheck") continue;
        if (outcome === "failed") failedAt = step;
        break;
      }
    }
    if (failedAt >= 0) {
      rolledBack++;
      byStep[failedAt]++;
    }
  }
  return { scenario, rolledBack, trials, checksPerTrial: checks / trials, byStep };
}

/** Wilson score interval at 95 percent, in percent. */
function wilson(k: number, n: number): [number, number] {
  const z = 1.96;
  const p = k / n;
  const centre = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
  return [100 * Math.max(0, centre - half), 100 * Math.min(1, centre + half)];
}


export function analysisFigures(rollout: RolloutConfig = productionRollout()): Figure[] {
  return SCENARIOS.map((scenario, k) => {
    const r = simulate(scenario, rollout, TRIALS, SEED + k);
    const value = Math.round((10_000 * r.rolledBack) / r.trials) / 100;
    const [lo, hi] = wilson(r.rolledBack, r.trials);
    const atLeast = scenario.kind === "detection_pct";
    return {
      name: scenario.name,
      median: value,
      min: value,
      max: value,
      unit: "%",
      runs: 1,
      target: scenario.target,
      judged: "median",
      ...(atLeast ? { atLeast } : {}),
      met: atLeast ? value >= scenario.target : value <= scenario.target,
      note:
        `${r.trials} simulated rollouts (seed ${SEED + k}), steps ${rollout.steps.join("/")}, ${rollout.probesPerStep} viewer + ${rollout.probesPerStep / 2} preview probes per slot and check, ` +
        `production thresholds; rolled back ${r.rolledBack} (95% interval ${lo.toFixed(2)}-${hi.toFixed(2)}%), by step ${r.byStep.join("/")}; ${r.checksPerTrial.toFixed(2)} checks per rollout`,
    };
  });
}

if (require.main === module) {
  const started = Date.now();
  for (const f of analysisFigures()) console.log(`${f.name.padEnd(40)} ${String(f.median).padStart(6)} ${f.unit}  target ${f.atLeast ? "≥" : "≤"} ${f.target}  ${f.met ? "met" : "NOT MET"}\n  ${f.note}`);
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
