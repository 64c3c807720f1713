// The longest a rollout can take, plus its revert, from a stack's config: what a GitHub Actions job's timeout-minutes and
// its AWS role session (role-duration-seconds) must outlast, or the job is killed, or its credentials expire, mid-rollout.
// The workflows carry the figures as literals; tests/automation/workflows.test.ts recomputes them from
// stacks/Pulumi.*.yaml with ciLimits() so they cannot drift, and docs/RUNBOOK.md ("Time limits in CI") lists them.
//
// Every wait the driver bounds is taken at its bound (the bake at every recheck, the edge's propagation timeout, the
// browser gate's timeouts). Two things have no bound in the driver and take an allowance instead: a `pulumi up`, and
// the job's own set-up. A stack's very first deploy also waits for its new CloudFront distribution (up to 30 minutes,
// targets.ts awaitNewDistribution): create it with `pulumi up` before CI deploys to the stack (README), as that is
// not counted here.
import type { StackConfig } from "../infra/config";
import { browserGateBoundMs } from "./browserGate";
import { leaseTtlMs } from "./lease";
import { PROPAGATION_TIMEOUT_MS } from "./rollout";

/**
 * An allowance per `pulumi up`, not a measurement: a routing change updates one KeyValueStore key, which takes seconds;
 * the rest is the CLI's and the providers' start and AWS API retries.
 */
export const UP_ALLOWANCE_SECONDS = 300;
/** An allowance for the probes that check the candidate before traffic, or all viewers back on the stable slot after a
 * revert (each probe is bounded by the prober's timeout; seconds in practice). */
export const VERIFY_ALLOWANCE_SECONDS = 120;
/** An allowance for the job's steps before the rollout: checkout, npm ci, the Pulumi CLI's install, the credentials. */
export const JOB_SETUP_SECONDS = 900;
/**
 * How long a lease whose holder was killed stays live before `rollback` may finish its journal: twice its default TTL
 * (the workflows do not set BLUEGREEN_LEASE_SECONDS), as expiry is judged across two machines' clocks.
 */
export const LEASE_WAIT_SECONDS = (2 * leaseTtlMs({})) / 1000;

export interface RolloutBudget {
  /** From the first change to the candidate serving 100 percent as the stable slot, or the decision to revert. */
  rolloutSeconds: number;
  /** One revert (or one `rollback`): restore the config, `up`, the edge serving it, all viewers verified. */
  revertSeconds: number;
}

export function rolloutBudget(config: StackConfig): RolloutBudget {
  // One routing change: its `up`, then the edge serving it.
  const change = UP_ALLOWANCE_SECONDS + PROPAGATION_TIMEOUT_MS / 1000;
  const gate = browserGateBoundMs(config.verification.browserGate, 2) / 1000;
  // A step bakes once per check, and checks again at the same weight until failureThreshold fail in a row; with
  // browserGate.everyStep the gate runs again after each step's judgement.
  const step = change + config.rollout.bakeSeconds * config.rollout.failureThreshold + (config.verification.browserGate.everyStep ? gate : 0);
  const staging = change + VERIFY_ALLOWANCE_SECONDS + gate;
  const settle = change;
  return {
    rolloutSeconds: Math.ceil(staging + config.rollout.steps.length * step + settle),
    revertSeconds: Math.ceil(change + VERIFY_ALLOWANCE_SECONDS),
  };
}

export interface CiLimits {
  /** deploy.yml's rollout step: the longest rollout, stopped there by GitHub (SIGINT, SIGTERM) so the revert can follow. */
  rolloutStepMinutes: number;
  /** The step that finishes a revert after a cancelled or failed rollout step (and rollback.yml's rollback step). */
  revertStepMinutes: number;
  /** deploy.yml's job: set-up, the rollout step, the finishing step. */
  deployJobMinutes: number;
  /** rollback.yml's job: set-up and one rollback. */
  rollbackJobMinutes: number;
  /** The AWS role session of each job: its whole timeout (the credentials are taken early in the job). */
  deployRoleSeconds: number;
  rollbackRoleSeconds: number;
}

/** The limits for workflows that may run against any of `stacks`: the longest of them decides. */
export function ciLimits(stacks: readonly StackConfig[]): CiLimits {
  const budgets = stacks.map(rolloutBudget);
  const minutes = (seconds: number) => Math.ceil(seconds / 60);
  const rolloutStepMinutes = minutes(Math.max(...budgets.map((b) => b.rolloutSeconds)));
  const revertStepMinutes = minutes(Math.max(...budgets.map((b) => b.revertSeconds)) + LEASE_WAIT_SECONDS);
  const deployJobMinutes = minutes(JOB_SETUP_SECONDS) + rolloutStepMinutes + revertStepMinutes;
  const rollbackJobMinutes = minutes(JOB_SETUP_SECONDS) + revertStepMinutes;
  return { rolloutStepMinutes, revertStepMinutes, deployJobMinutes, rollbackJobMinutes, deployRoleSeconds: deployJobMinutes * 60, rollbackRoleSeconds: rollbackJobMinutes * 60 };
}
