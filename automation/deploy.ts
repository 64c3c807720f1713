// `bluegreen deploy`: validate everything first (bad input changes nothing), take the stack's lease, sync the config
// with the last deployment, upload the release to the idle slot, then hand over to the rollout state machine.
import { releaseIdProblem, rolloutSchema, type Slot, type StackConfig } from "../infra/config";
import { OperatorNeededError, RolledBackError, UsageError } from "./errors";
import { currentHolder, Lease, leaseStoreOf, leaseTtlMs, refuseUnlessFree, takeLease } from "./lease";
import { notify } from "./notify";
import { viewing, viewingLine } from "./open";
import type { Reporter } from "./output";
import { planRollout } from "./plan";
import { HttpProber } from "./prober";
import { buildManifest, pruneReleases, readManifest, readRelease, sameBytes, uploadRelease, type Manifest } from "./releases";
import { runRollout, systemClock, type DeployReport, type RolloutStage } from "./rollout";
import { holdSignals } from "./signals";
import { highestRevision, newestSucceeded, readHistory, refuseInProgress } from "./history";
import { parseConfigMap, readLiveConfig, restoreConfig, syncSecretsFromLive } from "./stackConfig";
import { actor, awaitNewDistribution, edgeOf, faultNote, openTarget, viewerUrl, type LocalCloud, type Target } from "./targets";

export interface DeployOptions {
  stack: string;
  artifact: string;
  release: string;
  steps?: number[];
  bakeMs?: number;
  json: boolean;
  dryRun: boolean;
}

/** Parses `--steps 10,25,50,75,100` with the same rules as the stack config's rollout.steps. */
export function parseSteps(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const steps = text.split(",").map((s) => (s.trim() === "" ? NaN : Number(s.trim())));
  const result = rolloutSchema.shape.steps.safeParse(steps);
  if (!result.success) throw new UsageError(`--steps = ${JSON.stringify(text)}: expected ${result.error.issues[0].message} (e.g. 10,25,50,75,100)`);
  return result.data;
}

/** Parses a duration such as `60s`, `2m`, `500ms` or a bare number of seconds. */
export function parseDuration(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} = ${JSON.stringify(text)}: expected a non-negative duration such as 60s, 2m or 500ms`);
  const ms = Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000);
  if (ms > 3_600_000) throw new UsageError(`${flag} = ${JSON.stringify(text)}: expected at most 60m`);
  return ms;
}

function checkRelease(release: string): void {
  const problem = releaseIdProblem(release);
  if (problem) throw new UsageError(`--release = ${JSON.stringify(release)}: expected ${problem}`);
}

/** `cloud`: run a local stack on this already-started local cloud (the demo) instead of starting or joining one. */
export async function deploy(opts: DeployOptions, reporter: Reporter, where: { cloud?: LocalCloud } = {}): Promise<DeployReport | undefined> {
  checkRelease(opts.release);
  const { manifest, bodies } = await buildManifest(opts.artifact, opts.release);
  // A dry run changes nothing, so it brings no local stack into being either: on one that does not exist it is refused.
  const target = await openTarget(opts.stack, { ...where, create: !opts.dryRun });
  try {
    return await shipRelease(
      target,
      { action: "deploy", manifest, bodies, subject: `--release = ${JSON.stringify(opts.release)}`, steps: opts.steps, bakeMs: opts.bakeMs, dryRun: opts.dryRun },
      reporter,
    );
  } finally {
    await target.close();
  }
}

/** A release ready to ship: its manifest and every file's bytes, built from a folder (deploy) or read from a stack (promote). */
export interface Shipment {
  action: "deploy" | "promote";
  manifest: Manifest;
  bodies: ReadonlyMap<string, Buffer>;
  /** How refusals name the release: the flag and value it came from. */
  subject: string;
  steps?: number[];
  bakeMs?: number;
  dryRun?: boolean;
  /** Re-read every uploaded object from the bucket and check it against the manifest's SHA-256 before any traffic moves. */
  proveUpload?: boolean;
  /**
   * Runs once every check has passed and before anything changes (promote's approval gate); may refuse by throwing.
   * What it returns goes into the audit record's details.
   */
  beforeChange?: (config: StackConfig) => Promise<Record<string, unknown>>;
}

/**
 * The rollout of an already-built release on an open stack: lease, sync the config with the last deployment, check,
 * upload to the idle slot, run the rollout state machine, prune, audit, notify, report. Shared by deploy and promote.
 */
export async function shipRelease(target: Target, shipment: Shipment, reporter: Reporter): Promise<DeployReport | undefined> {
  const { manifest, bodies, subject } = shipment;
  const release = manifest.release;
  const dryRun = shipment.dryRun ?? false;
  const { stack } = target;
  reporter.summary.note({ stack: stack.name, release });
  const command = `${shipment.action} ${release}`;
  const ttlMs = leaseTtlMs();
  // The lease first: a rollout in progress has a journal too, and must be reported as running, not as interrupted.
  // A fresh stack has no audit bucket to hold it yet: it is taken right after the `up` that creates the bucket.
  const store = await leaseStoreOf(target);
  if (dryRun && store) refuseUnlessFree(stack.name, await store.view());
  let lease: Lease | undefined = !dryRun && store ? await takeLease(store, currentHolder(command), { ttlMs, log: (m) => reporter.emit({ kind: "info", message: m }) }) : undefined;
  let unlock = !dryRun;
  /** What the lease says on release: the rollout's result once there is one (`bluegreen abort` reports it). */
  let outcome = "stopped before any traffic moved";
  // From taking the lease to releasing it, SIGINT/SIGTERM never kill the process outright (signals.ts): a rollout in
  // flight reverts first, and one that is over still records its result and releases the lease. (Killed in between, it
  // left a dead holder's lock that made the next deploy ask for a rollback of a release that had completed.)
  const controller = new AbortController();
  // `bluegreen abort` on any machine marks the lease; the heartbeat sees it within one poll and the rollout reverts.
  const watch = (held: Lease) =>
    held.startHeartbeat(
      (by) => {
        reporter.emit({ kind: "info", message: `bluegreen abort from ${by}: ${rolloutOver ? "the rollout is already over" : "reverting"}` });
        controller.abort(`bluegreen abort from ${by}`);
      },
      (by) => controller.abort(`the loss of the stack's lease to ${by}`),
    );
  let rolloutOver = false;
  if (lease) watch(lease);
  let stage: RolloutStage = { text: "checking the stack before any change", revert: false };
  const signalAnswer = (signal: NodeJS.Signals, count: number, sinceFirstMs: number): string => {
    controller.abort(signal);
    if (rolloutOver) return "recording the result and releasing the lease before exit";
    const since = count === 1 ? "" : `, ${(sinceFirstMs / 1000).toFixed(1)} s after the first signal`;
    if (stage.revert) return `the revert is in progress (${stage.text}${since}); it is not interrupted: wait for it to finish`;
    if (count === 1) return `reverting before exit (now: ${stage.text}); a further signal does not interrupt the revert`;
    return `the revert begins as soon as this ends: ${stage.text}${since}; it is not interrupted: wait for it to finish`;
  };
  const letGo = unlock ? holdSignals((signal, count, since) => reporter.emit({ kind: "info", message: `${signal}: ${signalAnswer(signal, count, since)}` })) : () => {};
  try {
    // A CI checkout's stack file is older than what earlier runs deployed: judge from the newest successful update's
    // config (a failed update records a config it only attempted). The stack file itself is synced only once every
    // check has passed, so a refusal leaves it byte for byte as it was.
    const history = await readHistory(stack);
    refuseInProgress(stack.name, history);
    const deployed = newestSucceeded(history);
    const live = await readLiveConfig(stack);
    const deployedMap = deployed ? syncSecretsFromLive(deployed.config, live.map) : undefined;
    const { config, previewToken } = deployedMap ? parseConfigMap(deployedMap, stack.name) : live;
    reporter.summary.note({ config });
    if (config.weights[config.stable] !== 100) {
      throw new OperatorNeededError(
        `stack ${stack.name} is not settled (weights ${JSON.stringify(config.weights)}, stable ${config.stable}); run: bluegreen rollback --stack ${stack.name}`,
      );
    }
    if (previewToken === undefined) throw new UsageError(`stack ${stack.name}: picasso-widget:previewToken = (missing): expected a secret; the candidate is verified through the preview route`);
    if (config.slots[config.stable].release === release) {
      throw new UsageError(`${subject}: expected a release other than the one ${config.stable} already serves`);
    }
    const nextRevision = highestRevision(history, config.revision) + 1;
    const plan = planRollout(config, { release, steps: shipment.steps, bakeMs: shipment.bakeMs, nextRevision });
    const candidate: Slot = plan.candidate;
    reporter.summary.note({ plan });

    if (dryRun) {
      reporter.emit({ kind: "info", message: `dry run: ${release} (${Object.keys(manifest.files).length} files) → ${candidate}; steps ${plan.steps.join(", ")}; bake ${plan.bakeMs} ms; revisions ${plan.firstRevision}..${plan.firstRevision + plan.steps.length}; nothing changed` });
      const dry = { result: "dry-run", stack: stack.name, release, slot: candidate, stable: config.stable, plan };
      reporter.finish(dry, `Dry run: ${release} (${Object.keys(manifest.files).length} files) would go to ${candidate}; nothing changed.`, `dry run: nothing changed`);
      return undefined;
    }

    let outputs = await stack.outputs();
    if (outputs.bucketNames) {
      const existingBuckets = outputs.bucketNames.value as Record<Slot, string>;
      for (const slot of ["blue", "green"] as const) {
        const existing = await readManifest(target.s3, existingBuckets[slot], release);
        if (existing && !sameBytes(existing, manifest)) {
          throw new UsageError(`${subject}: expected a new release id; ${slot} already holds ${release} with different bytes (release ids are immutable)`);
        }
      }
    }
    const gateDetails = (await shipment.beforeChange?.(config)) ?? {};

    // Every check passed: from here on the stack changes. The snapshot a revert restores is the synced config.
    if (deployedMap) await restoreConfig(stack, deployedMap, live.map);
    const synced = await readLiveConfig(stack);
    if (synced.previewToken === undefined) throw new Error("unreachable: the synced config lost the preview token");
    // Buckets exist only after a first `up` (a fresh stack): create the infrastructure without moving traffic.
    if (!outputs.bucketNames) {
      await stack.up({ message: "bluegreen deploy: create the stack's infrastructure" });
      outputs = await stack.outputs();
      await awaitNewDistribution(outputs, (message) => reporter.emit({ kind: "info", message }));
    }
    if (!lease) {
      const created = await leaseStoreOf(target);
      if (!created) throw new OperatorNeededError(`stack ${stack.name} has no auditBucket output after its first update; run: pulumi up --stack ${stack.name}`);
      lease = await takeLease(created, currentHolder(command), { ttlMs, log: (m) => reporter.emit({ kind: "info", message: m }) });
      watch(lease);
    }
    const buckets = outputs.bucketNames.value as Record<Slot, string>;

    const upload = await uploadRelease(target.s3, { bucket: buckets[candidate], slot: candidate }, manifest, bodies);
    reporter.emit({ kind: "info", message: `uploaded ${release} to ${candidate}: ${upload.uploaded} files (${upload.bytes} bytes), ${upload.skipped} unchanged` });
    if (shipment.proveUpload) {
      const landed = await readRelease(target.s3, { bucket: buckets[candidate], slot: candidate }, manifest).catch((err: Error) => {
        throw new OperatorNeededError(`${stack.name}'s ${candidate} slot does not hold ${release} as uploaded (${err.message}); no traffic was moved; run the command again to re-upload`);
      });
      reporter.emit({ kind: "info", message: `${candidate} holds ${release} byte for byte: ${landed.size} files re-read and matched to the manifest's SHA-256` });
    }

    const baseVersion = (await stack.history(1, 1))[0]?.version ?? 0;
    const edge = edgeOf(target, outputs);
    reporter.summary.note({ viewer: { url: viewerUrl(edge) } });
    const prober = new HttpProber(edge);
    let report: DeployReport;
    try {
      report = await runRollout(
        { stack, prober, clock: systemClock, progress: reporter, journal: lease, holder: lease.holder, signal: controller.signal, onStage: (s) => (stage = s) },
        { plan, config: synced.config, snapshot: synced.map, previewToken: synced.previewToken, manifest, baseVersion },
      );
    } finally {
      prober.close();
      rolloutOver = true;
    }
    outcome = report.result;
    // A revert that did not complete leaves its journal for `bluegreen rollback` (on any machine) to finish.
    if (report.result === "failed") {
      unlock = false;
      await lease.abandon();
    }

    if (report.result === "succeeded") {
      const keep = new Set<string>([release, config.slots.blue.release, config.slots.green.release].filter((r): r is string => !!r));
      // history is newest first: the releases of the most recent successful updates are rollback targets.
      for (const u of history.filter((h) => h.result === "succeeded").slice(0, config.retention * 10)) {
        const slots = u.config["picasso-widget:slots"]?.value;
        if (slots) for (const s of Object.values(JSON.parse(slots) as Record<string, { release?: string }>)) if (s.release) keep.add(s.release);
      }
      // Housekeeping after the release is live: a failure here must not turn a completed rollout into an error.
      await pruneReleases(target.s3, { bucket: buckets[candidate], slot: candidate }, config.retention, keep).then(
        (pruned) => pruned.length > 0 && reporter.emit({ kind: "info", message: `retention: removed ${pruned.join(", ")} from ${candidate}` }),
        (err: Error) => reporter.emit({ kind: "info", message: `retention skipped: ${err.message}` }),
      );
    }
    const settled = report.result === "succeeded" ? { slots: { ...config.slots, [candidate]: { release } }, stable: candidate } : { slots: config.slots, stable: config.stable };
    await target.audit.append({
      action: report.result === "succeeded" ? shipment.action : "revert",
      actor: actor(),
      stack: stack.name,
      release,
      slots: settled.slots,
      weights: { blue: settled.stable === "blue" ? 100 : 0, green: settled.stable === "green" ? 100 : 0 },
      result: report.result,
      reasons: report.rollback ? [report.rollback.reason] : [],
      timing: { startedAt: new Date(Date.now() - report.durationMs).toISOString(), durationMs: report.durationMs },
      details: { ...gateDetails, slot: candidate, steps: report.steps.map((s) => ({ weight: s.weight, verdict: s.verdict, observedShare: s.observedShare })), rollback: report.rollback },
    });
    await notify(config.webhooks, `bluegreen ${stack.name}: ${release} ${report.result}${report.rollback ? ` (${report.rollback.reason})` : ""}`, (m) => reporter.emit({ kind: "info", message: m }));
    // On a rollback the error line that follows gives the reason; the headline says where viewers are.
    const back = settled.slots[settled.stable].release;
    const headline =
      report.result === "succeeded"
        ? `${release} is live on ${candidate} (${(report.durationMs / 1000).toFixed(1)} s)`
        : report.result === "rolled-back"
          ? `every viewer is back on ${settled.stable}${back ? ` (${back})` : ""}`
          : `the revert did not complete: viewers may still reach ${candidate}`;
    const viewer = viewing(stack.name, edge, settled);
    reporter.summary.note({ report, viewer });
    reporter.emit({ kind: "info", message: viewingLine(viewer) });
    reporter.finish({ ...report, viewer }, "", headline);
    if (report.result === "rolled-back") throw new RolledBackError(`${release} rolled back at ${report.rollback?.weight}%: ${report.rollback?.reason}${faultNote(target)}`);
    if (report.result === "failed") throw new OperatorNeededError(`${release} at ${report.rollback?.weight}%: ${report.rollback?.reason}${faultNote(target)}`);
    return report;
  } finally {
    if (unlock) await lease?.release(outcome);
    letGo();
  }
}
