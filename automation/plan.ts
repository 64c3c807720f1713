// The rollout plan is data: which slot gets the release, the weight at each step, and the config each step applies.
// The weight at any point is a pure function of (plan, step index, aborted), as in Argo Rollouts.
import { otherSlot, type Slot, type StackConfig } from "../infra/config";

export interface TrafficPlan {
  release: string;
  stable: Slot;
  /** The slot receiving the release: the idle one, or the stable one itself on a fresh stack (bootstrap). */
  candidate: Slot;
  /** The stable slot serves nothing yet: the first release goes straight onto it; there is nothing to shift from. */
  bootstrap: boolean;
  /** Percent of traffic on the candidate at each step; strictly increasing, ends at 100. */
  steps: number[];
  bakeMs: number;
  /** Revision of the first config the rollout writes; each later write raises it by one. */
  firstRevision: number;
}

export function planRollout(config: StackConfig, opts: { release: string; steps?: number[]; bakeMs?: number; nextRevision: number }): TrafficPlan {
  const bootstrap = config.slots[config.stable].release === undefined;
  return {
    release: opts.release,
    stable: config.stable,
    candidate: bootstrap ? config.stable : otherSlot(config.stable),
    bootstrap,
    steps: bootstrap ? [100] : (opts.steps ?? config.rollout.steps),
    bakeMs: opts.bakeMs ?? config.rollout.bakeSeconds * 1000,
    firstRevision: opts.nextRevision,
  };
}

/** Candidate weight after step `index` (-1: before any step); an aborted rollout is back at 0. */
export function candidateWeight(plan: TrafficPlan, index: number, aborted: boolean): number {
  return aborted || index < 0 ? 0 : plan.steps[Math.min(index, plan.steps.length - 1)];
}

function weightsFor(plan: TrafficPlan, candidatePercent: number): Record<Slot, number> {
  if (plan.bootstrap) return { [plan.stable]: 100, [otherSlot(plan.stable)]: 0 } as Record<Slot, number>;
  return { [plan.candidate]: candidatePercent, [plan.stable]: 100 - candidatePercent } as Record<Slot, number>;
}

/** Stage the release on the candidate slot: no viewer traffic yet. */
export function stageConfig(base: StackConfig, plan: TrafficPlan): StackConfig {
  return {
    ...base,
    slots: { ...base.slots, [plan.candidate]: { release: plan.release } },
    weights: weightsFor(plan, 0),
    revision: plan.firstRevision,
  };
}

/**
 * The config for step `index`. The stable slot does not change, not even at 100 percent: a 100 percent update is a
 * step still to be judged, and a runner killed during its bake must leave a rollout that looks interrupted.
 */
export function stepConfig(staged: StackConfig, plan: TrafficPlan, index: number): StackConfig {
  return { ...staged, weights: weightsFor(plan, candidateWeight(plan, index, false)), revision: plan.firstRevision + index + 1 };
}

/** After the 100 percent step passed its judgement, and only then, the candidate becomes the stable slot in its own update. */
export function settleConfig(staged: StackConfig, plan: TrafficPlan): StackConfig {
  return { ...staged, weights: weightsFor(plan, 100), stable: plan.candidate, revision: plan.firstRevision + plan.steps.length + 1 };
}

/** The highest revision a rollout of `plan` may write: a revert writes one above it. */
export function lastRevision(plan: TrafficPlan): number {
  return plan.firstRevision + plan.steps.length + 1;
}
