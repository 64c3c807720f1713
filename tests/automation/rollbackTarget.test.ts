import { expect } from "chai";
import { chooseRollbackTarget } from "../../automation/rollback";
import type { ConfigMap, UpdateSummary } from "../../automation/port";

const TOKEN = { value: "local-preview-token-0123456789", secret: true };

function config(stable: "blue" | "green", releases: { blue?: string; green?: string }, weights: { blue: number; green: number }): ConfigMap {
  const slots = { blue: releases.blue ? { release: releases.blue } : {}, green: releases.green ? { release: releases.green } : {} };
  return {
    "picasso-widget:environment": { value: "local" },
    "picasso-widget:slots": { value: JSON.stringify(slots) },
    "picasso-widget:stable": { value: stable },
    "picasso-widget:weights": { value: JSON.stringify(weights) },
    "picasso-widget:previewToken": TOKEN,
  };
}

let version = 0;
function update(message: string, c: ConfigMap, result: UpdateSummary["result"] = "succeeded"): UpdateSummary {
  version += 1;
  return { version, kind: "update", result, message, environment: {}, config: c, startTime: new Date(), endTime: new Date() };
}

// 1.0.0 on blue, then a rollout of 2.0.0 onto green (staged, 50%, 100%), newest first as stack.history() returns it.
function history(): UpdateSummary[] {
  version = 0;
  const u = [
    update("bluegreen deploy 1.0.0: blue at 100%", config("blue", { blue: "1.0.0" }, { blue: 100, green: 0 })),
    update("bluegreen deploy 2.0.0: stage on green", config("blue", { blue: "1.0.0", green: "2.0.0" }, { blue: 100, green: 0 })),
    update("bluegreen deploy 2.0.0: green at 50%", config("blue", { blue: "1.0.0", green: "2.0.0" }, { blue: 50, green: 50 })),
    update("bluegreen deploy 2.0.0: green at 100%", config("green", { blue: "1.0.0", green: "2.0.0" }, { blue: 0, green: 100 })),
  ];
  return u.reverse();
}

describe("choosing what rollback restores", () => {
  it("picks the newest earlier settled update serving another release, never a rollout's staging or mid-way update", () => {
    expect(chooseRollbackTarget(history(), "local").message).to.equal("bluegreen deploy 1.0.0: blue at 100%");
  });

  it("walks further back after a rollback instead of forward again", () => {
    const h = history();
    const restored = chooseRollbackTarget(h, "local");
    const after = [update(`bluegreen rollback: restore update ${restored.version}`, restored.config), ...h];
    expect(() => chooseRollbackTarget(after, "local")).to.throw(/no earlier successful update serving a release other than 1\.0\.0/);
  });

  it("restores --to N only when update N served one release at 100 percent", () => {
    expect(chooseRollbackTarget(history(), "local", 1).version).to.equal(1);
    expect(() => chooseRollbackTarget(history(), "local", 3)).to.throw(/--to = 3: expected a successful update that served one release at 100 percent \(update 3 was mid-rollout\)/);
    expect(() => chooseRollbackTarget(history(), "local", 9)).to.throw(/--to = 9: expected an update version of stack local \(4, 3, 2, 1\)/);
  });

  it("after a rollout stopped mid-way without a journal, restores the settled state just before that rollout", () => {
    const h = history().slice(1); // newest is now "green at 50%"
    expect(chooseRollbackTarget(h, "local").message).to.equal("bluegreen deploy 1.0.0: blue at 100%");
  });

  it("ignores failed updates", () => {
    const h = history();
    h[3] = { ...h[3], result: "failed" };
    expect(() => chooseRollbackTarget(h, "local")).to.throw(/nothing to roll back to; .* bluegreen history --stack local and run bluegreen rollback --stack local --to <version>$/);
  });
});
