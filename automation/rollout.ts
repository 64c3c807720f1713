// The rollout state machine: stage → verify candidate → (set weight → up → verify routing → bake → judge)* → done,
// or revert to the exact pre-rollout config. All I/O is injected: stack, prober, clock, progress, journal.
import { createHash } from "node:crypto";
import type { RolloutConfig, Slot, StackConfig } from "../infra/config";
import { browserGateFor, type BrowserGateResult, type BrowserGateRunner } from "./browserGate";
import { analyseStep, binomialTailAtLeast, RolloutJudge, type Finding, type Sample, type SlotMetrics, type StepAnalysis, type Thresholds, type Verdict } from "./analysis";
import { redactSecrets, type Holder, type JournalEntry } from "./lease";
import { candidateWeight, lastRevision, settleConfig, stageConfig, stepConfig, type TrafficPlan } from "./plan";
import type { ConfigMap, DeploymentStack } from "./port";
import { probeMany, type Prober, type ProbeRequest, type ProbeResponse } from "./prober";
import { qualifiedPrefix, type Manifest } from "./releases";
import { restoreConfig, withRevision, writeRouting } from "./stackConfig";

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

export type ProgressEvent =
  | { kind: "info"; message: string }
  | { kind: "plan"; plan: TrafficPlan }
  | { kind: "bake"; bake: BakeProgress }
  | { kind: "step"; step: StepReport; total: number }
  | { kind: "rollback"; rollback: RollbackReport };

export interface Progress {
  emit(event: ProgressEvent): void;
}

/** A bake in flight: what the live view shows while a step probes (5 x 300 s in production). */
export interface BakeProgress {
  index: number;
  weight: number;
  /** 1 for a step's first check; a failing check is baked again at the same weight (failureThreshold). */
  check: number;
  bakeMs: number;
  elapsedMs: number;
  probes: { done: number; planned: number };
  /** HTTP errors so far by the slot a probe was aimed at (preview) or served by (fresh viewers). */
  errors: Record<Slot, number>;
  /** Probes that got no response at all, or errors no slot header names. */
  unattributed: number;
}

export interface StepReport {
  index: number;
  weight: number;
  verdict: Verdict | "up-failed" | "not-propagated";
  observedShare: number;
  viewerSamples: number;
  metrics: Record<Slot, SlotMetrics> | null;
  findings: Finding[];
  /**
   * The judged check's probes that no slot answers for, counted apart from the slots' HTTP errors: requests sent again
   * after getting no response, probes that got none in TRANSPORT_ATTEMPTS tries, and fresh viewers' errors without a
   * slot header.
   */
  unattributed?: { transportRetries: number; transportFailures: number; untaggedErrors: number };
  timings: { configMs: number; upMs: number; propagationMs: number; bakeMs: number };
  /** The real-browser gate after this step's judgement, when `verification.browserGate.everyStep` is set. */
  browserGate?: BrowserGateResult;
}

export interface RollbackReport {
  reason: string;
  step: number | null;
  weight: number;
  metric: string | null;
  /** The revision the restored (pre-rollout) config carries. */
  restoredRevision: number;
  /** From the failing judgement to the edge serving 100 percent stable, verified. */
  restoreMs: number;
}

export interface DeployReport {
  result: "succeeded" | "rolled-back" | "failed";
  stack: string;
  release: string;
  slot: Slot;
  stable: Slot;
  /** The steps planned (weights in percent) and the bake of each; `steps` holds those that ran. */
  plan: { steps: number[]; bakeMs: number };
  /** The judgement's settings this rollout ran with (stack config rollout). */
  thresholds: RolloutConfig;
  steps: StepReport[];
  rollback: RollbackReport | null;
  durationMs: number;
  /** The real-browser gate's verdict, findings and screenshot paths, when it ran. */
  browserGate?: BrowserGateResult;
}

/** Where a rollout is: what a further SIGINT/SIGTERM reports while the rollout stops and reverts. */
export interface RolloutStage {
  text: string;
  /** True from the moment the revert begins. */
  revert: boolean;
}

export interface RolloutDeps {
  stack: DeploymentStack;
  prober: Prober;
  clock: Clock;
  progress: Progress;
  /** The stack's lease: the rollout's progress is recorded in it, for `status` and for `rollback` on any machine. */
  journal: { record(entry: JournalEntry): Promise<void>; clear(): Promise<void> };
  holder: Holder;
  /** Aborted on SIGINT/SIGTERM and on `bluegreen abort`: the rollout reverts before returning. */
  signal: AbortSignal;
  /** Told as each stage of the rollout and of its revert begins. */
  onStage?: (stage: RolloutStage) => void;
  concurrency?: number;
  /** The real-browser gate; by default a headless Chromium against the prober's edge. */
  browserGate?: BrowserGateRunner;
}

export interface RolloutInput {
  plan: TrafficPlan;
  config: StackConfig;
  /** getAllConfig() before the rollout: what a revert restores, exactly. */
  snapshot: ConfigMap;
  previewToken: string;
  manifest: Manifest;
  /** The stack's newest update before the rollout: a journal restore refuses a stack that has moved past it. */
  baseVersion: number;
}

/** Path the viewer-request function answers itself with the routing revision it currently reads from the KVS. */
export const ROUTING_PROBE_PATH = "/.bluegreen/routing";
/** How long the driver waits for the edge to serve a routing change (each step, staging, settling, a revert). */
export const PROPAGATION_TIMEOUT_MS = 180_000;
const PROPAGATION_POLL_MS = 100;

class StepFailed extends Error {
  constructor(readonly finding: { metric: string; message: string }) {
    super(finding.message);
  }
}

export async function runRollout(deps: RolloutDeps, input: RolloutInput): Promise<DeployReport> {
  const { plan, config, snapshot } = input;
  const started = deps.clock.now();
  const steps: StepReport[] = [];
  const expected: Record<Slot, string> = { blue: config.slots.blue.release ?? "", green: config.slots.green.release ?? "" };
  expected[plan.candidate] = plan.release;
  const staged = stageConfig(config, plan);
  const { snapshot: diskSnapshot, secretKeys } = redactSecrets(snapshot);
  let lastVerdict: string | undefined;
  const journal = (phase: "staging" | "shifting" | "reverting", step: number, bakeEndsAt?: number) =>
    deps.journal.record({
      stack: deps.stack.name,
      release: plan.release,
      candidate: plan.candidate,
      stable: plan.stable,
      phase,
      step,
      steps: plan.steps,
      weight: candidateWeight(plan, step, false),
      ...(lastVerdict ? { lastVerdict } : {}),
      ...(bakeEndsAt !== undefined ? { bakeEndsAt: new Date(bakeEndsAt).toISOString() } : {}),
      baseVersion: input.baseVersion,
      snapshot: diskSnapshot,
      secretKeys,
      holder: deps.holder,
      updatedAt: "",
    });
  const report = (result: DeployReport["result"], rollback: RollbackReport | null, stable: Slot): DeployReport => ({
    result,
    stack: deps.stack.name,
    release: plan.release,
    slot: plan.candidate,
    stable,
    plan: { steps: plan.steps, bakeMs: plan.bakeMs },
    thresholds: config.rollout,
    steps,
    rollback,
    durationMs: deps.clock.now() - started,
    ...(browserGate ? { browserGate } : {}),
  });

  const stage = (text: string, revert = false) => deps.onStage?.({ text, revert });
  let browserGate: BrowserGateResult | undefined;
  let failedAt = -1;
  let failure: { metric: string; message: string } | undefined;
  try {
    checkAbort(deps);
    deps.progress.emit({ kind: "plan", plan });
    await journal("staging", -1);
    deps.progress.emit({
      kind: "info",
      message: plan.bootstrap ? `first release of the stack: ${plan.release} goes straight onto ${plan.candidate}` : `staging release ${plan.release} on ${plan.candidate} (no viewer traffic)`,
    });
    stage(`staging ${plan.release} on ${plan.candidate}: pulumi up`);
    await writeRouting(deps.stack, staged);
    await up(deps, `bluegreen deploy ${plan.release}: stage on ${plan.candidate}`);
    stage(`staging ${plan.release} on ${plan.candidate}: waiting for the edge to serve revision ${staged.revision}`);
    await awaitRouting(deps, staged.revision, deps.signal);
    checkAbort(deps);
    stage(`verifying ${plan.candidate} through the preview route`);
    await verifyCandidate(deps, input, plan.candidate);
    checkAbort(deps);
    stage(`the browser gate on ${plan.candidate}`);
    const gate = deps.browserGate ?? browserGateFor(deps.prober);
    const runGate = async (when: string): Promise<BrowserGateResult | undefined> => {
      const result = (await gate({ stack: deps.stack.name, release: plan.release, candidate: plan.candidate, stable: plan.bootstrap ? null : plan.stable, previewToken: input.previewToken, config })) ?? undefined;
      if (result) deps.progress.emit({ kind: "info", message: `browser gate on ${plan.candidate} ${when}: ${result.verdict} (${result.embedding}, report ${result.report})` });
      return result;
    };
    const gateFailed = (result: BrowserGateResult | undefined) => {
      if (result?.verdict === "failed") throw new StepFailed({ metric: "browser", message: result.findings.map((f) => f.message).join("; ") });
    };
    browserGate = await runGate("before any viewer traffic");
    gateFailed(browserGate);

    const judge = new RolloutJudge(config.rollout);
    for (let i = 0; i < plan.steps.length; i++) {
      // Stopped before this step moved any traffic: the report names the weight viewers actually had.
      checkAbort(deps);
      failedAt = i;
      await journal("shifting", i);
      const step = await runStep(deps, input, staged, expected, i, judge, (endsAt) => journal("shifting", i, endsAt));
      steps.push(step);
      lastVerdict = step.verdict;
      deps.progress.emit({ kind: "step", step, total: plan.steps.length });
      if (step.verdict !== "passed" && !(step.verdict === "inconclusive" && config.rollout.inconclusive === "pass")) {
        const f = step.findings[0];
        throw new StepFailed({ metric: f?.metric ?? step.verdict, message: f?.message ?? step.verdict });
      }
      if (config.verification.browserGate.everyStep) {
        checkAbort(deps);
        stage(`the browser gate on ${plan.candidate} at ${step.weight}%`);
        step.browserGate = await runGate(`at ${step.weight}%`);
        gateFailed(step.browserGate);
      }
    }
    // A signal or `bluegreen abort` that arrived during the last judgement still reverts: past this point the release is
    // settled, and only `bluegreen rollback` undoes it.
    checkAbort(deps);
    if (!plan.bootstrap) {
      // The judgement at 100 percent passed: only now does the candidate become the stable slot, in its own update.
      const settled = settleConfig(staged, plan);
      stage(`making ${plan.candidate} the stable slot: pulumi up`);
      await writeRouting(deps.stack, settled);
      await up(deps, `bluegreen deploy ${plan.release}: ${plan.candidate} is stable`);
      await awaitRouting(deps, settled.revision);
    }
    await deps.journal.clear();
    deps.progress.emit({ kind: "info", message: `release ${plan.release} serves 100 percent on ${plan.candidate}, now the stable slot` });
    return report("succeeded", null, plan.candidate);
  } catch (err) {
    failure = err instanceof StepFailed ? err.finding : { metric: deps.signal.aborted ? "interrupted" : "error", message: err instanceof Error ? err.message : String(err) };
  }

  // Revert: the exact pre-rollout config under a revision above any this rollout wrote (the stale-file guard has no
  // exception for reverts), `up`, and proof that the stable slot takes all traffic again.
  const failedClock = deps.clock.now();
  const revertRevision = lastRevision(plan) + 1;
  const weight = failedAt >= 0 ? plan.steps[failedAt] : 0;
  deps.progress.emit({ kind: "info", message: `reverting to the pre-rollout config: ${failure.message}` });
  try {
    stage("revert 1/4: restoring the pre-rollout config", true);
    // Best effort: a journal that cannot be written must never stand between a bad release and the revert.
    await journal("reverting", failedAt).catch((err: Error) => deps.progress.emit({ kind: "info", message: `journal not written: ${err.message}` }));
    await restoreConfig(deps.stack, withRevision(snapshot, revertRevision));
    stage(`revert 2/4: pulumi up of the pre-rollout config (revision ${revertRevision})`, true);
    await up(deps, `bluegreen revert ${plan.release}: ${failure.message}`.slice(0, 200));
    stage(`revert 3/4: waiting for the edge to serve revision ${revertRevision}`, true);
    await awaitRouting(deps, revertRevision);
    const viewers = Math.max(config.rollout.minSamples, 50);
    const stableRelease = config.slots[plan.stable].release ?? "";
    stage(`revert 4/4: checking that ${viewers} fresh viewers get ${plan.stable}/${stableRelease || "(no release)"}`, true);
    await verifyAllOn(deps, plan.stable, stableRelease, viewers, config.verification.healthPath, config.rollout);
  } catch (err) {
    // The journal stays: `bluegreen rollback` finishes what this could not. The report says so (result "failed").
    const message = `revert did not complete (${firstLine(err)}); run: bluegreen rollback --stack ${deps.stack.name}`;
    deps.progress.emit({ kind: "info", message });
    const rollback: RollbackReport = { reason: `${failure.message}; ${message}`, step: failedAt >= 0 ? failedAt : null, weight, metric: failure.metric, restoredRevision: revertRevision, restoreMs: deps.clock.now() - failedClock };
    return report("failed", rollback, plan.stable);
  }
  await deps.journal.clear();
  const rollback: RollbackReport = {
    reason: failure.message,
    step: failedAt >= 0 ? failedAt : null,
    weight,
    metric: failure.metric,
    restoredRevision: revertRevision,
    restoreMs: deps.clock.now() - failedClock,
  };
  deps.progress.emit({ kind: "rollback", rollback });
  return report("rolled-back", rollback, plan.stable);
}

function checkAbort(deps: RolloutDeps): void {
  if (deps.signal.aborted) throw new StepFailed({ metric: "interrupted", message: `interrupted by ${String(deps.signal.reason ?? "a signal")}` });
}

async function up(deps: RolloutDeps, message: string): Promise<void> {
  await deps.stack.up({ message });
}

async function runStep(
  deps: RolloutDeps,
  input: RolloutInput,
  staged: StackConfig,
  expected: Record<Slot, string>,
  index: number,
  judge: RolloutJudge,
  onBake: (endsAt: number) => Promise<void>,
): Promise<StepReport> {
  const { plan, config } = input;
  const next = stepConfig(staged, plan, index);
  const weight = plan.steps[index];
  const stage = (text: string) => deps.onStage?.({ text: `step ${index + 1}/${plan.steps.length} (${weight}%): ${text}`, revert: false });
  const t0 = deps.clock.now();
  const base: StepReport = { index, weight, verdict: "failed", observedShare: 0, viewerSamples: 0, metrics: null, findings: [], timings: { configMs: 0, upMs: 0, propagationMs: 0, bakeMs: 0 } };
  await writeRouting(deps.stack, next);
  const t1 = deps.clock.now();
  base.timings.configMs = t1 - t0;
  stage("pulumi up");
  try {
    await up(deps, `bluegreen deploy ${plan.release}: ${plan.candidate} at ${weight}%`);
  } catch (err) {
    base.timings.upMs = deps.clock.now() - t1;
    return { ...base, verdict: "up-failed", findings: [{ metric: "up-failed", slot: plan.candidate, message: `pulumi up failed at ${weight}%: ${firstLine(err)}` }] };
  }
  const t2 = deps.clock.now();
  base.timings.upMs = t2 - t1;
  stage(`waiting for the edge to serve revision ${next.revision}`);
  try {
    await awaitRouting(deps, next.revision, deps.signal);
  } catch (err) {
    if (err instanceof StepFailed) throw err;
    return { ...base, verdict: "not-propagated", findings: [{ metric: "share", slot: plan.candidate, message: firstLine(err) }] };
  }
  const t3 = deps.clock.now();
  base.timings.propagationMs = t3 - t2;
  deps.progress.emit({ kind: "info", message: `${plan.candidate} at ${weight}%: edge serves routing revision ${next.revision}; baking ${plan.bakeMs} ms` });

  // A failing check bakes and judges again at this weight: it rolls back only after failureThreshold in a row.
  stage(`baking ${plan.bakeMs} ms`);
  let analysis: StepAnalysis;
  let transportRetries = 0;
  judge.startStep();
  let check = 0;
  do {
    // Best effort, like every journal write that only informs `status --watch`: it never fails a step.
    await onBake(deps.clock.now() + plan.bakeMs).catch(() => undefined);
    const samples = await bake(deps, input, { index, weight, check: ++check });
    transportRetries = samples.reduce((n, s) => n + (s.attempts ?? 1) - 1, 0);
    checkAbort(deps);
    analysis = analyseStep({
      samples,
      stable: plan.stable,
      candidate: plan.candidate,
      expected,
      thresholds: config.rollout,
      aimedAt: samples.map((s) => (s as ProbeResponse & { aimedAt?: Slot }).aimedAt),
      weight,
      earlier: judge.earlier,
    });
  } while (judge.record(analysis) === "recheck");
  base.timings.bakeMs = deps.clock.now() - t3;
  const { transportFailures, untaggedErrors } = analysis.unattributed;
  return { ...base, verdict: analysis.verdict, observedShare: analysis.observedShare, viewerSamples: analysis.viewerSamples, metrics: analysis.metrics, findings: analysis.findings, unattributed: { transportRetries, transportFailures, untaggedErrors } };
}

/** Probes for the bake: fresh viewers (they measure the split) plus preview requests to each slot (they guarantee
 * enough samples per slot even at 10 percent). */
async function bake(deps: RolloutDeps, input: RolloutInput, at: Pick<BakeProgress, "index" | "weight" | "check">): Promise<(Sample & { aimedAt?: Slot; attempts?: number })[]> {
  const { config, previewToken } = input;
  const bakeMs = input.plan.bakeMs;
  const n = config.rollout.probesPerStep;
  const path = config.verification.healthPath;
  const requests: (ProbeRequest & { aimedAt?: Slot })[] = [];
  // Preview probes measure the two slots the verdict compares; on a fresh stack that is one slot.
  const measured: Slot[] = input.plan.bootstrap ? [input.plan.candidate] : [input.plan.candidate, input.plan.stable];
  for (let i = 0; i < n; i++) {
    requests.push({ path });
    const slot = measured[i % measured.length];
    requests.push({ path, preview: { token: previewToken, slot }, aimedAt: slot });
  }
  const started = deps.clock.now();
  const progress: BakeProgress = { ...at, bakeMs, elapsedMs: 0, probes: { done: 0, planned: requests.length }, errors: { blue: 0, green: 0 }, unattributed: 0 };
  const results = await probeMany(deps.prober, requests, {
    concurrency: deps.concurrency ?? 8,
    spreadMs: bakeMs,
    sleep: (ms) => deps.clock.sleep(ms),
    aborted: () => deps.signal.aborted,
    onResult: (res, i) => {
      progress.probes.done++;
      const slot = requests[i].aimedAt ?? res.slot;
      if (res.status === 0 || (res.status >= 400 && slot === undefined)) progress.unattributed++;
      else if (res.status >= 400 && slot !== undefined) progress.errors[slot]++;
      progress.elapsedMs = deps.clock.now() - started;
      deps.progress.emit({ kind: "bake", bake: { ...progress, probes: { ...progress.probes }, errors: { ...progress.errors } } });
    },
  });
  const check = config.verification.securityHeaders;
  return results.map((r, i) => ({ ...r, missingHeaders: check ? r.missingHeaders : [], aimedAt: requests[i].aimedAt }));
}

/** Every manifest file at its release-qualified URL, hash-checked, then the smoke checks through the preview route
 * (following the entry point's redirect, as a browser does): before any viewer traffic. */
async function verifyCandidate(deps: RolloutDeps, input: RolloutInput, slot: Slot): Promise<void> {
  const preview = { token: input.previewToken, slot };
  const files = Object.entries(input.manifest.files);
  const responses = await Promise.all(files.map(([file]) => probeIntegrity(deps, { path: `${qualifiedPrefix(slot, input.plan.release)}${file}`, preview })));
  responses.forEach((res, i) => {
    const [file, entry] = files[i];
    const hash = createHash("sha256").update(res.body).digest("hex");
    if (res.status !== 200 || hash !== entry.sha256 || res.release !== input.plan.release) {
      throw new StepFailed({ metric: "release", message: `${slot} serves /${file} with status ${res.status}, release ${res.release ?? "(none)"}, sha256 ${hash.slice(0, 12)}; expected 200, ${input.plan.release}, ${entry.sha256.slice(0, 12)}` });
    }
  });
  for (const check of input.config.verification.smoke) {
    const res = await probeIntegrity(deps, { path: check.path, preview, follow: true });
    if (res.status !== check.status || (check.contains !== undefined && !res.body.toString("utf8").includes(check.contains))) {
      throw new StepFailed({ metric: "smoke", message: `smoke check ${check.path} on ${slot}: status ${res.status}${check.contains ? `, body ${res.body.toString("utf8").includes(check.contains) ? "contains" : "lacks"} ${JSON.stringify(check.contains)}` : ""}; expected ${check.status}` });
    }
  }
  deps.progress.emit({ kind: "info", message: `${slot} verified through the preview route: ${files.length} files hash-checked, ${input.config.verification.smoke.length} smoke checks passed` });
}

/**
 * The integrity checks judge content, not availability: a transient 5xx (or a dropped connection) is retried, while a
 * wrong hash, release or status fails at once. Error rates are the step analysis's business, with its thresholds.
 */
export async function probeIntegrity(deps: Pick<RolloutDeps, "prober" | "clock">, request: ProbeRequest, attempts = 8): Promise<ProbeResponse> {
  let res = await deps.prober.probe(request);
  for (let i = 1; i < attempts && (res.status === 0 || res.status >= 500); i++) {
    await deps.clock.sleep(50);
    res = await deps.prober.probe(request);
  }
  return res;
}

/** VerifyWeight: waits until the edge reads the routing revision just written. */
export async function awaitRouting(deps: Pick<RolloutDeps, "prober" | "clock">, revision: number, signal?: AbortSignal): Promise<void> {
  const deadline = deps.clock.now() + PROPAGATION_TIMEOUT_MS;
  let seen: string = "nothing";
  while (deps.clock.now() < deadline) {
    // A signal while waiting to move forward stops the wait at once (the revert that follows does not pass one).
    if (signal?.aborted) throw new StepFailed({ metric: "interrupted", message: `interrupted by ${String(signal.reason ?? "a signal")}` });
    const res = await deps.prober.probe({ path: ROUTING_PROBE_PATH });
    if (res.status === 200) {
      let rev: unknown;
      try {
        rev = (JSON.parse(res.body.toString("utf8")) as { rev?: unknown }).rev;
      } catch {
        rev = "(unreadable)";
      }
      if (rev === revision) return;
      seen = `revision ${String(rev)}`;
    } else seen = `status ${res.status}`;
    await deps.clock.sleep(PROPAGATION_POLL_MS);
  }
  throw new Error(`the edge did not serve routing revision ${revision} within ${PROPAGATION_TIMEOUT_MS / 1000} s (it served ${seen})`);
}

/** Rounds of fresh viewers verifyAllOn sends before it declares failure, and the pause before each new round. */
export const VERIFY_ROUNDS = 3;
const VERIFY_PAUSE_MS = 1000;

/**
 * Proves a slot takes all traffic: fresh viewers only, each must land on it and get its release. A slot with no
 * release (a fresh stack reverted to nothing) must answer every viewer 503. A viewer served by the other slot or
 * release fails the round; errors that name no slot (CloudFront runs no viewer-response function on an error, so an
 * origin's 5xx and the edge's own look alike) and probes that got no response are no slot's fault: they fail the
 * round only when they are beyond the stack's error limit at its confidence, as in the step analysis. A failed round
 * is repeated, VERIFY_ROUNDS rounds in all, so one dropped probe or a moment of propagation lag is not a failed revert.
 */
export async function verifyAllOn(
  deps: Pick<RolloutDeps, "prober" | "clock">,
  slot: Slot,
  release: string,
  count: number,
  path = "/version.json",
  limits: Pick<Thresholds, "maxErrorRate" | "confidence" | "minErrors"> = { maxErrorRate: 0, confidence: 0.99, minErrors: 1 },
): Promise<void> {
  let problem = "";
  for (let round = 1; round <= VERIFY_ROUNDS; round++) {
    if (round > 1) await deps.clock.sleep(VERIFY_PAUSE_MS * (round - 1));
    const res = await probeMany(deps.prober, Array.from({ length: count }, () => ({ path })), { concurrency: 8, spreadMs: 0, sleep: (ms) => deps.clock.sleep(ms) });
    const found = allOnProblem(res, slot, release, limits);
    if (found === undefined) return;
    problem = found;
  }
  throw new Error(`${problem} (${VERIFY_ROUNDS} rounds of ${count} fresh viewers)`);
}

function allOnProblem(res: readonly ProbeResponse[], slot: Slot, release: string, limits: Pick<Thresholds, "maxErrorRate" | "confidence" | "minErrors">): string | undefined {
  const want = release === "" ? `${slot} with no release (503)` : `${slot}/${release}`;
  // A response naming a slot is certain: it says where the edge sent the viewer.
  const misrouted = res.filter((r) => r.slot !== undefined && (release === "" || r.slot !== slot || r.release !== release));
  if (misrouted.length > 0) {
    const r = misrouted[0];
    return `${misrouted.length} of ${res.length} viewers were served ${r.slot}/${r.release ?? "no release"} (status ${r.status}), not ${want}`;
  }
  // A success without a slot header is no slot's answer either: certain, like a misrouted one.
  const unnamed = res.filter((r) => r.slot === undefined && r.status > 0 && r.status < 400);
  if (unnamed.length > 0) return `${unnamed.length} of ${res.length} viewers got status ${unnamed[0].status} with no slot header, not ${want}`;
  const noResponse = res.filter((r) => r.status === 0).length;
  const untagged = res.filter((r) => r.slot === undefined && r.status >= 400 && (release !== "" || r.status !== 503)).length;
  const slotErrors = res.filter((r) => r.slot !== undefined && r.status >= 400).length;
  const bad = noResponse + untagged + slotErrors;
  if (bad === 0) return undefined;
  // The fresh-stack case has nothing to judge errors against: every response must be the 503.
  const tolerated = release !== "" && (bad < limits.minErrors || binomialTailAtLeast(bad, res.length, limits.maxErrorRate) >= 1 - limits.confidence);
  if (tolerated) return undefined;
  const parts = [slotErrors > 0 ? `${slotErrors} answered an error from ${slot}` : "", untagged > 0 ? `${untagged} answered an error with no slot header (unattributable: the edge, or either slot)` : "", noResponse > 0 ? `${noResponse} got no response` : ""];
  return `${bad} of ${res.length} viewers were not served ${want}: ${parts.filter((p) => p !== "").join(", ")}`;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0];
}
