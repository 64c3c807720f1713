import { expect } from "chai";
import {
  analyseStep,
  binomialTailAtLeast,
  hypergeometricTailAtLeast,
  P95_FLOOR_MS,
  rateRatioPValue,
  RolloutJudge,
  upperQuantileShiftPValue,
  type Sample,
  type StepAnalysis,
  type Thresholds,
} from "../../automation/analysis";
import type { Slot } from "../../infra/config";

const thresholds: Thresholds = { minSamples: 20, maxErrorRate: 0.05, maxErrorRatio: 2, maxP95Ratio: 1.5, maxTransportErrorRate: 0.01, confidence: 0.99, minErrors: 5 };
const expected = { blue: "1.0.0", green: "2.0.0" };

type Probe = Sample & { aimedAt?: Slot };

/**
 * `n` probes of one slot. Preview probes (the default) carry the slot they were aimed at. Failed responses carry no
 * slot header: CloudFront runs no viewer-response function for an origin's 4xx/5xx.
 */
function samples(slot: Slot, n: number, opts: { errors?: number; latencyMs?: number | ((i: number) => number); release?: string; preview?: boolean; status?: number } = {}): Probe[] {
  const preview = opts.preview ?? true;
  return Array.from({ length: n }, (_, i) => {
    const failed = i < (opts.errors ?? 0);
    const latencyMs = typeof opts.latencyMs === "function" ? opts.latencyMs(i) : (opts.latencyMs ?? 5);
    return {
      status: failed ? (opts.status ?? 503) : 200,
      latencyMs,
      slot: failed ? undefined : slot,
      release: failed ? undefined : (opts.release ?? expected[slot]),
      preview,
      aimedAt: preview ? slot : undefined,
    };
  });
}

function judge(all: Probe[], extra: { weight?: number; thresholds?: Partial<Thresholds> } = {}) {
  return analyseStep({ samples: all, stable: "blue", candidate: "green", expected, thresholds: { ...thresholds, ...extra.thresholds }, aimedAt: all.map((s) => s.aimedAt), weight: extra.weight });
}

const metricsOf = (a: StepAnalysis) => a.findings.map((f) => f.metric);

describe("step analysis (the verdict of one traffic step)", () => {
  it("passes a healthy step and reports the observed share of fresh viewers", () => {
    const viewers = [...samples("blue", 75, { preview: false }), ...samples("green", 25, { preview: false })];
    const a = judge([...viewers, ...samples("blue", 50), ...samples("green", 50)], { weight: 25 });
    expect(a.verdict).to.equal("passed");
    expect(a.observedShare).to.equal(25);
    expect(a.viewerSamples).to.equal(100);
    // The error rate's sample is the preview probes aimed at the slot; fresh viewers count for its latency.
    expect(a.metrics.green.requests).to.equal(50);
  });

  it("judges a slot's error rate on the probes aimed at it, so viewers' successes cannot dilute errors that lost their header", () => {
    // Green fails 10 percent of everything; its 900 tagged viewer successes would have diluted 30 errors to 2.5 percent.
    const viewers = [...samples("green", 900, { preview: false }), ...samples("green", 100, { errors: 100, preview: false })];
    const a = judge([...viewers, ...samples("blue", 300), ...samples("green", 300, { errors: 30 })]);
    expect(a.metrics.green).to.deep.include({ requests: 300, errors: 30, errorRate: 0.1 });
    expect(metricsOf(a)).to.include("error-rate");
  });

  describe("errors: the candidate against the stable slot", () => {
    it("does not roll back a healthy release when both slots see the same 0.3% errors", () => {
      const a = judge([...samples("blue", 1000, { errors: 3 }), ...samples("green", 1000, { errors: 3 })]);
      expect(a.verdict).to.equal("passed");
      expect(a.metrics.green.errorRate).to.equal(0.003);
    });

    it("does not roll back on 0.2% against 0.1%, the noise that once read as 'above 2x green's 0.1%'", () => {
      expect(judge([...samples("blue", 1000, { errors: 1 }), ...samples("green", 1000, { errors: 2 })]).verdict).to.equal("passed");
    });

    it("does not treat one candidate error as an infinite excess when the stable slot had none", () => {
      expect(judge([...samples("blue", 300), ...samples("green", 300, { errors: 1 })]).verdict).to.equal("passed");
    });

    it("fails when the candidate's error rate is significantly above maxErrorRatio x the stable's, though under the absolute limit", () => {
      // 14 of 300 (4.7 percent) against none of 300: at the 2x limit green would hold 2/3 of the errors, P = (2/3)^14 ≈ 0.003.
      const a = judge([...samples("blue", 300), ...samples("green", 300, { errors: 14 })]);
      expect(metricsOf(a)).to.deep.equal(["error-ratio"]);
      expect(a.findings[0].slot).to.equal("green");
    });

    it("needs minErrors candidate errors before the comparison may fail a check", () => {
      // 4 of 300 against none of 3000 is significant on its own (p ≈ 0.0004); minErrors keeps a handful from deciding.
      const few = [...samples("blue", 3000), ...samples("green", 300, { errors: 4 })];
      expect(rateRatioPValue(4, 300, 0, 3000, 2)).to.be.below(0.01);
      expect(judge(few).verdict).to.equal("passed");
      expect(judge(few, { thresholds: { minErrors: 4 } }).findings.map((f) => f.metric)).to.deep.equal(["error-ratio"]);
    });

    it("weighs the sample sizes: equal rates over 300 and 3,000 requests are no excess", () => {
      expect(rateRatioPValue(6, 300, 60, 3000, 1)).to.be.above(0.3);
      expect(rateRatioPValue(6, 300, 6, 3000, 1)).to.be.below(0.01);
    });
  });

  describe("errors: the absolute limit", () => {
    it("fails when the new slot's error rate is significantly above the limit, charging untagged preview errors to the slot aimed at", () => {
      const a = judge([...samples("blue", 300), ...samples("green", 300, { errors: 30 })]);
      expect(metricsOf(a)).to.include("error-rate");
      expect(a.metrics.green.errorRate).to.equal(0.1);
      expect(a.metrics.blue.errors).to.equal(0);
    });

    it("does not fail a rate just above the limit measured on a few requests", () => {
      // 2 of 30 is 6.7 percent, over a 5 percent limit; P(≥ 2 of 30 | 5%) ≈ 0.45.
      const a = judge([...samples("blue", 30, { errors: 2 }), ...samples("green", 30, { errors: 2 })]);
      expect(a.verdict).to.equal("passed");
    });

    it("counts a 4xx as an error: every probe asks for a path the release must serve", () => {
      const a = judge([...samples("blue", 300), ...samples("green", 300, { errors: 30, status: 403 })]);
      expect(a.metrics.green.errors).to.equal(30);
      expect(metricsOf(a)).to.include("error-rate");
    });
  });

  describe("transport failures and errors of no known slot", () => {
    it("counts probes that got no response apart from HTTP errors and charges them to no slot", () => {
      const dropped = samples("green", 3, { errors: 3, status: 0 });
      const a = judge([...samples("blue", 300), ...samples("green", 300), ...dropped]);
      expect(a.verdict).to.equal("passed");
      expect(a.unattributed.transportFailures).to.equal(3);
      expect(a.metrics.green).to.deep.include({ requests: 300, errors: 0 });
    });

    it("fails on transport failures above maxTransportErrorRate as their own finding, naming no slot", () => {
      const dropped = [...samples("green", 20, { errors: 20, status: 0 }), ...samples("blue", 20, { errors: 20, status: 0 })];
      const a = judge([...samples("blue", 300), ...samples("green", 300), ...dropped]);
      expect(metricsOf(a)).to.deep.equal(["transport"]);
      expect(a.findings[0].slot).to.equal(undefined);
    });

    it("judges fresh viewers' errors without a slot header as their own category, not as the candidate's", () => {
      const untagged = samples("green", 20, { errors: 20, preview: false });
      const a = judge([...samples("blue", 100), ...samples("green", 100), ...samples("blue", 80, { preview: false }), ...untagged]);
      expect(a.metrics.green.errors).to.equal(0);
      expect(a.unattributed).to.deep.include({ viewerResponses: 100, untaggedErrors: 20 });
      expect(metricsOf(a)).to.deep.equal(["unattributed"]);
      expect(a.findings[0].slot).to.equal(undefined);
    });

    it("computes the observed share over viewers whose slot is known", () => {
      const viewers = [...samples("blue", 90, { preview: false }), ...samples("green", 10, { preview: false }), ...samples("green", 2, { errors: 2, preview: false })];
      expect(judge([...viewers, ...samples("blue", 50), ...samples("green", 50)]).observedShare).to.equal(10);
    });
  });

  describe("p95 latency", () => {
    it("fails when the new slot's p95 is above 1.5x the stable slot's beyond its sampling noise", () => {
      const a = judge([...samples("blue", 300, { latencyMs: 100 }), ...samples("green", 300, { latencyMs: 200 })]);
      expect(metricsOf(a)).to.deep.equal(["p95-latency"]);
    });

    it("does not fail a p95 over the ratio that a couple of slow samples make", () => {
      // The candidate's p95 is 200 ms against 100 ms, but only its two slowest of 20 say so: p ≈ 0.24.
      const a = judge([...samples("blue", 20, { latencyMs: 100 }), ...samples("green", 20, { latencyMs: (i) => (i < 2 ? 200 : 100) })]);
      expect(a.metrics.green.p95Ms).to.equal(200);
      expect(a.verdict).to.equal("passed");
    });

    it("does not fail latency differences under the floor, however significant", () => {
      const jitter = judge([...samples("blue", 300, { latencyMs: 2 }), ...samples("green", 300, { latencyMs: P95_FLOOR_MS })]);
      expect(jitter.verdict).to.equal("passed");
    });

    it("still detects a 300 ms regression on 10 probes per slot, where the slowest 5 percent alone could never reach the confidence", () => {
      const stable = Array.from({ length: 10 }, (_, i) => 1 + i / 10);
      const candidate = stable.map((ms) => ms + 300);
      // The top 5 percent of 20 samples is one sample: p is 0.5 whatever the latencies are.
      expect(upperQuantileShiftPValue(candidate, stable, 1.5, 0.95)).to.be.closeTo(0.5, 1e-9);
      expect(upperQuantileShiftPValue(candidate, stable, 1.5, 0.95, 0.01)).to.be.below(0.01);
      const step = judge([...samples("blue", 10, { latencyMs: 1 }), ...samples("green", 10, { latencyMs: 301 })]);
      expect(step.findings.map((f) => f.metric)).to.include("p95-latency");
    });

    it("keeps small samples of the same latencies from failing when the tail is widened", () => {
      const same = Array.from({ length: 10 }, (_, i) => 60 + i);
      expect(upperQuantileShiftPValue(same, same, 1.5, 0.95, 0.01)).to.be.above(0.5);
      const shuffled = [61, 63, 64, 66, 67, 68, 70, 71, 72, 75];
      expect(upperQuantileShiftPValue(shuffled, same, 1.5, 0.95, 0.01)).to.be.above(0.5);
    });

    it("tests the upper tail, not the middle: a slower median alone is no p95 regression", () => {
      const stable = Array.from({ length: 600 }, (_, i) => (i < 570 ? 20 : 100));
      const candidate = Array.from({ length: 600 }, (_, i) => (i < 570 ? 60 : 100));
      expect(upperQuantileShiftPValue(candidate, stable, 1.25, 0.95)).to.be.above(0.5);
    });
  });

  describe("observed share against the weight", () => {
    const viewers = (onGreen: number, total: number) => [...samples("blue", total - onGreen, { preview: false }), ...samples("green", onGreen, { preview: false })];
    const slots = [...samples("blue", 100), ...samples("green", 100)];

    it("fails when the share is off the weight beyond its binomial tolerance", () => {
      const a = judge([...viewers(400, 1000), ...slots], { weight: 25 });
      expect(metricsOf(a)).to.deep.equal(["share"]);
    });

    it("tolerates a share within the sampling noise of the viewers probed", () => {
      // 75 of 600 at weight 10: 2.5 pp off, two-sided p ≈ 0.05.
      expect(judge([...viewers(75, 600), ...slots], { weight: 10 }).verdict).to.equal("passed");
    });

    it("tolerates deviations of up to SHARE_FLOOR_PP even at 100 percent", () => {
      expect(judge([...viewers(990, 1000), ...slots], { weight: 100 }).verdict).to.equal("passed");
      expect(metricsOf(judge([...viewers(970, 1000), ...slots], { weight: 100 }))).to.deep.equal(["share"]);
    });
  });

  it("fails when a slot serves the wrong release", () => {
    const a = judge([...samples("blue", 50), ...samples("green", 50, { release: "1.9.9" })]);
    expect(a.findings[0]).to.deep.include({ metric: "release", slot: "green" });
  });

  it("fails when responses lack the security headers", () => {
    const all = [...samples("blue", 50), ...samples("green", 50)];
    all[3] = { ...all[3], missingHeaders: ["strict-transport-security"] };
    expect(metricsOf(judge(all))).to.deep.equal(["security-headers"]);
  });

  it("is inconclusive with too few samples of a slot", () => {
    const a = judge([...samples("blue", 50), ...samples("green", 5)]);
    expect(a.verdict).to.equal("inconclusive");
    expect(a.findings[0]).to.deep.include({ metric: "samples", slot: "green" });
  });

  it("judges a first release (candidate and stable the same slot) without comparing the slot with itself", () => {
    const a = analyseStep({ samples: samples("blue", 100, { errors: 2 }), stable: "blue", candidate: "blue", expected, thresholds, aimedAt: Array(100).fill("blue"), weight: 100 });
    expect(a.verdict).to.equal("passed");
  });
});

describe("rollout judge (a finding must hold for failureThreshold consecutive checks)", () => {
  const failed = (metric: "error-rate" | "release"): Pick<StepAnalysis, "verdict" | "findings"> => ({ verdict: "failed", findings: [{ metric, slot: "green", message: metric }] });
  const passed: Pick<StepAnalysis, "verdict" | "findings"> = { verdict: "passed", findings: [] };
  const inconclusive: Pick<StepAnalysis, "verdict" | "findings"> = { verdict: "inconclusive", findings: [{ metric: "samples", slot: "green", message: "few" }] };

  it("asks for another check after a failing one, and rolls back when the next one fails too", () => {
    const streak = new RolloutJudge({ failureThreshold: 2, inconclusive: "fail" });
    expect(streak.record(failed("error-rate"))).to.equal("recheck");
    expect(streak.record(failed("error-rate"))).to.equal("failed");
  });

  it("lets the step pass when the check after a failing one passes", () => {
    const streak = new RolloutJudge({ failureThreshold: 3, inconclusive: "fail" });
    expect([failed("error-rate"), failed("error-rate"), passed].map((c) => streak.record(c))).to.deep.equal(["recheck", "recheck", "passed"]);
    expect(streak.consecutiveFailures).to.equal(0);
  });

  it("rolls back on the first check with a threshold of 1", () => {
    expect(new RolloutJudge({ failureThreshold: 1, inconclusive: "fail" }).record(failed("error-rate"))).to.equal("failed");
  });

  it("rolls back at once on a wrong release: a fact, not an estimate", () => {
    expect(new RolloutJudge({ failureThreshold: 3, inconclusive: "fail" }).record(failed("release"))).to.equal("failed");
  });

  it("starts each step's streak from zero", () => {
    const judge = new RolloutJudge({ failureThreshold: 2, inconclusive: "fail" });
    expect(judge.record(failed("error-rate"))).to.equal("recheck");
    judge.startStep();
    expect(judge.record(failed("error-rate"))).to.equal("recheck");
  });

  it("adds up the preview evidence across steps, so errors too few for one check still roll a bad release back", () => {
    // 4 errors of 300 per check against a clean stable slot: below minErrors in any one check; 12 of 900 after three.
    const probes = [...samples("blue", 300), ...samples("green", 300, { errors: 4 })];
    const judge = new RolloutJudge({ failureThreshold: 1, inconclusive: "fail" });
    const check = () => analyseStep({ samples: probes, stable: "blue", candidate: "green", expected, thresholds, aimedAt: probes.map((s) => s.aimedAt), earlier: judge.earlier });
    expect([judge.record(check()), judge.record(check())]).to.deep.equal(["passed", "passed"]);
    const third = check();
    expect(third.findings.map((f) => f.metric)).to.deep.equal(["error-ratio"]);
    expect(third.findings[0].message).to.contain("over the rollout's preview probes so far");
  });

  it("counts an inconclusive check as failing only when configured so", () => {
    expect(new RolloutJudge({ failureThreshold: 2, inconclusive: "fail" }).record(inconclusive)).to.equal("recheck");
    expect(new RolloutJudge({ failureThreshold: 2, inconclusive: "pass" }).record(inconclusive)).to.equal("passed");
  });
});

describe("exact tail probabilities", () => {
  it("binomial: P(X ≥ 8) for 10 fair coins is 56/1024", () => {
    expect(binomialTailAtLeast(8, 10, 0.5)).to.be.closeTo(56 / 1024, 1e-12);
    expect(binomialTailAtLeast(0, 10, 0.5)).to.equal(1);
    expect(binomialTailAtLeast(11, 10, 0.5)).to.equal(0);
  });

  it("binomial: stays accurate at 100,000 trials (P(X ≥ 130 | n = 1e5, p = 0.001) by the normal approximation ≈ 0.0014)", () => {
    expect(binomialTailAtLeast(130, 100_000, 0.001)).to.be.within(0.001, 0.003);
  });

  it("hypergeometric: the lady tasting tea, all four cups right, is 1/70", () => {
    expect(hypergeometricTailAtLeast(4, 8, 4, 4)).to.be.closeTo(1 / 70, 1e-12);
    expect(hypergeometricTailAtLeast(3, 8, 4, 4)).to.be.closeTo(17 / 70, 1e-12);
  });
});
