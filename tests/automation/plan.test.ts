import { expect } from "chai";
import { parseStackConfig } from "../../infra/config";
import { candidateWeight, planRollout, settleConfig, stageConfig, stepConfig } from "../../automation/plan";

const config = parseStackConfig(
  { environment: "local", slots: { blue: { release: "1.0.0" }, green: {} }, stable: "blue", weights: { blue: 100, green: 0 }, revision: 4 },
  "local",
  { hasPreviewToken: true },
);

describe("traffic plan (pure)", () => {
  const plan = planRollout(config, { release: "2.0.0", nextRevision: 7 });

  it("sends the release to the idle slot through the stack's steps", () => {
    expect(plan).to.deep.include({ candidate: "green", stable: "blue", bootstrap: false, steps: [10, 25, 50, 75, 100], firstRevision: 7 });
  });

  it("is at 0 before any step and when aborted", () => {
    expect(candidateWeight(plan, -1, false)).to.equal(0);
    expect(candidateWeight(plan, 2, true)).to.equal(0);
    expect(candidateWeight(plan, 2, false)).to.equal(50);
  });

  it("stages without traffic, raises the weight and the revision at each step, and makes green stable only in the update after 100", () => {
    const staged = stageConfig(config, plan);
    expect(staged).to.deep.include({ weights: { blue: 100, green: 0 }, revision: 7, stable: "blue" });
    expect(staged.slots.green.release).to.equal("2.0.0");
    expect(stepConfig(staged, plan, 0)).to.deep.include({ weights: { blue: 90, green: 10 }, revision: 8, stable: "blue" });
    // At 100 percent the step is still to be judged: blue stays stable until the settle update after the judgement.
    expect(stepConfig(staged, plan, 4)).to.deep.include({ weights: { blue: 0, green: 100 }, revision: 12, stable: "blue" });
    expect(settleConfig(staged, plan)).to.deep.include({ weights: { blue: 0, green: 100 }, revision: 13, stable: "green" });
  });

  it("puts a fresh stack's first release straight onto its stable slot", () => {
    const fresh = parseStackConfig({ environment: "local", slots: { blue: {}, green: {} }, stable: "blue", weights: { blue: 100, green: 0 } }, "local", { hasPreviewToken: true });
    const first = planRollout(fresh, { release: "1.0.0", nextRevision: 1 });
    expect(first).to.deep.include({ candidate: "blue", bootstrap: true, steps: [100] });
    expect(stepConfig(stageConfig(fresh, first), first, 0)).to.deep.include({ weights: { blue: 100, green: 0 }, stable: "blue" });
  });
});
