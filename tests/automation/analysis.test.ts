import { expect } from "chai";
import { analyseStep, P95_FLOOR_MS, type Sample, type Thresholds } from "../../automation/analysis";
import type { Slot } from "../../infra/config";

const thresholds: Thresholds = { minSamples: 20, maxErrorRate: 0.05, maxErrorRatio: 2, maxP95Ratio: 1.5 };
const expected = { blue: "1.0.0", green: "2.0.0" };

function samples(slot: Slot, n: number, opts: { errors?: number; latencyMs?: number; release?: string; preview?: boolean } = {}): Sample[] {
  return Array.from({ length: n }, (_, i) => {
    const failed = i < (opts.errors ?? 0);
    // Failed responses carry no slot header: CloudFront skips viewer-response functions for 4xx/5xx from the origin.
    return { status: failed ? 503 : 200, latencyMs: opts.latencyMs ?? 5, slot: failed ? undefined : slot, release: failed ? undefined : (opts.release ?? expected[slot]), preview: opts.preview ?? true };
  });
}

function judge(all: Sample[], aimedAt?: (Slot | undefined)[]) {
  return analyseStep({ samples: all, stable: "blue", candidate: "green", expected, thresholds, aimedAt });
}

describe("step analysis (the verdict of one traffic step)", () => {
  it("passes a healthy step and reports the observed share of fresh viewers", () => {
    const viewers = [...samples("blue", 75, { preview: false }), ...samples("green", 25, { preview: false })];
    const a = judge([...viewers, ...samples("blue", 50), ...samples("green", 50)]);
    expect(a.verdict).to.equal("passed");
    expect(a.observedShare).to.equal(25);
    expect(a.viewerSamples).to.equal(100);
    expect(a.metrics.green.requests).to.equal(75);
  });

  it("fails when the new slot's error rate is above the absolute limit, charging untagged preview errors to the slot aimed at", () => {
    const green = samples("green", 100, { errors: 10 });
    const a = judge([...samples("blue", 100), ...green], [...Array(100).fill("blue"), ...Array(100).fill("green")]);
    expect(a.verdict).to.equal("failed");
    expect(a.findings.map((f) => f.metric)).to.include("error-rate");
    expect(a.metrics.green.errorRate).to.equal(0.1);
    expect(a.metrics.blue.errors).to.equal(0);
  });

  it("fails when the new slot's error rate is more than twice the stable slot's, even under the absolute limit", () => {
    const a = judge([...samples("blue", 100, { errors: 1 }), ...samples("green", 100, { errors: 4 })], [...Array(100).fill("blue"), ...Array(100).fill("green")]);
    expect(a.findings.map((f) => f.metric)).to.deep.equal(["error-ratio"]);
  });

  it("fails when the new slot's p95 is above 1.5x the stable slot's, but not for jitter under the floor", () => {
    expect(judge([...samples("blue", 50, { latencyMs: 100 }), ...samples("green", 50, { latencyMs: 200 })]).findings[0]?.metric).to.equal("p95-latency");
    const jitter = judge([...samples("blue", 50, { latencyMs: 2 }), ...samples("green", 50, { latencyMs: P95_FLOOR_MS })]);
    expect(jitter.verdict).to.equal("passed");
  });

  it("fails when a slot serves the wrong release", () => {
    const a = judge([...samples("blue", 50), ...samples("green", 50, { release: "1.9.9" })]);
    expect(a.findings[0]).to.deep.include({ metric: "release", slot: "green" });
  });

  it("fails when responses lack the security headers", () => {
    const all = [...samples("blue", 50), ...samples("green", 50)];
    all[3] = { ...all[3], missingHeaders: ["strict-transport-security"] };
    expect(judge(all).findings[0]?.metric).to.equal("security-headers");
  });

  it("is inconclusive with too few samples of a slot", () => {
    const a = judge([...samples("blue", 50), ...samples("green", 5)]);
    expect(a.verdict).to.equal("inconclusive");
    expect(a.findings[0]).to.deep.include({ metric: "samples", slot: "green" });
  });

  it("charges an untagged viewer error to the new slot, so a failing release never looks healthy", () => {
    const a = judge([...samples("blue", 100), ...samples("green", 100), ...samples("green", 20, { errors: 20, preview: false })]);
    expect(a.metrics.green.errors).to.equal(20);
    expect(a.verdict).to.equal("failed");
  });
});
