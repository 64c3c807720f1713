// `bluegreen rollback`: Pulumi has no rollback command; its FAQ says to re-apply earlier code and config. The
// program does not change between releases, only config, so restoring an earlier update's routing keys (slots,
// stable, weights) from `stack.history()` restores what viewers get; everything else stays as deployed now, and the
// revision is raised above every one ever deployed. An interrupted rollout (a journal in the stack's lease) is finished
// first, from any machine.
// https://www.pulumi.com/docs/iac/support/faq/#how-do-i-roll-back-to-a-previous-version-of-my-stack
import type { Slot } from "../infra/config";
import { OperatorNeededError, UsageError } from "./errors";
import { highestRevision, newestSucceeded, readHistory, refuseInProgress } from "./history";
import { currentHolder, describeHolder, describeJournal, Lease, leaseStoreOf, leaseTtlMs, refuseUnlessFree, type JournalEntry } from "./lease";
import { notify } from "./notify";
import { viewing, viewingLine } from "./open";
import type { Reporter } from "./output";
import type { ConfigMap, OutputMap, UpdateSummary } from "./port";
import { HttpProber } from "./prober";
import { readManifest, readRelease } from "./releases";
import { awaitRouting, systemClock, verifyAllOn } from "./rollout";
import { holdSignals } from "./signals";
import { parseConfigMap, restoreConfig, ROUTING_KEYS, syncSecretsFromLive, withRevision } from "./stackConfig";
import { actor, edgeOf, faultNote, openTarget, type Target } from "./targets";

export interface RollbackReport {
  result: "restored";
  stack: string;
  /** "interrupted-rollout" when a journal was finished, else the history version restored. */
  restored: { from: "interrupted-rollout" | "history"; version: number | null; revision: number };
  stable: Slot;
  release: string;
  /** From the start of the command to the edge serving 100 percent of the restored release, verified (with --now: to the edge reading the restored routing). */
  restoreMs: number;
  /** False with --now: no fresh viewers were probed (run `bluegreen verify`). */
  verified: boolean;
}

const ROLLBACK_MESSAGE = /^bluegreen rollback: restore update (\d+)/;
// A rollout's staging update (runRollout's first `up`) already puts the candidate release on the idle slot: it is a
// step of a rollout, not a state to return to. Restoring it would keep the rolled-back release as the next target.
const STAGING_MESSAGE = /^bluegreen deploy \S+: stage on (blue|green)$/;

function routingOf(config: ConfigMap, stack: string) {
  return parseConfigMap(config, stack).config;
}

function settled(u: UpdateSummary, stack: string): boolean {
  if (u.kind !== "update" || u.result !== "succeeded" || STAGING_MESSAGE.test(u.message)) return false;
  try {
    const c = routingOf(u.config, stack);
    return c.weights[c.stable] === 100 && c.slots[c.stable].release !== undefined;
  } catch {
    return false;
  }
}

/**
 * The update to restore: `--to N`, or the newest settled successful update older than what serves now that served a
 * different release. After a rollback, "what serves now" is the update it restored, so a second rollback walks
 * further back instead of forward again.
 */
export function chooseRollbackTarget(history: readonly UpdateSummary[], stack: string, to?: number): UpdateSummary {
  const newestFirst = [...history].sort((a, b) => b.version - a.version);
  if (to !== undefined) {
    const u = newestFirst.find((h) => h.version === to);
    if (!u) throw new UsageError(`--to = ${to}: expected an update version of stack ${stack} (${newestFirst.map((h) => h.version).join(", ") || "none"})`);
    if (!settled(u, stack)) throw new UsageError(`--to = ${to}: expected a successful update that served one release at 100 percent (update ${to} ${u.result === "succeeded" ? "was mid-rollout" : u.result})`);
    return u;
  }
  const current = newestFirst.find((u) => u.kind === "update" && u.result === "succeeded");
  if (!current) throw new UsageError(`stack ${stack} has no successful update to roll back from`);
  // Stopped mid-rollout with no journal left (a CI runner killed with its working folder): the stable slot still
  // serves the release from before that rollout, so the settled state just before it is the one to return to.
  if (!settled(current, stack)) {
    const before = newestFirst.find((u) => u.version < current.version && settled(u, stack));
    if (!before) throw new UsageError(`stack ${stack} has no settled successful update before update ${current.version}: nothing to roll back to${orTo(stack)}`);
    return before;
  }
  const restoredFrom = ROLLBACK_MESSAGE.exec(current.message);
  const floor = restoredFrom ? Number(restoredFrom[1]) : current.version;
  const stableRelease = (u: UpdateSummary) => {
    const c = routingOf(u.config, stack);
    return c.slots[c.stable].release;
  };
  const release = stableRelease(current);
  const target = newestFirst.find((u) => u.version < floor && settled(u, stack) && stableRelease(u) !== release);
  if (!target) throw new UsageError(`stack ${stack} has no earlier successful update serving a release other than ${release ?? "(none)"}: nothing to roll back to${orTo(stack)}`);
  return target;
}

/** Where a rollback with no earlier target points the operator: any settled update, newer ones included, by number. */
function orTo(stack: string): string {
  return `; to restore any other settled update (a newer one too), find it with bluegreen history --stack ${stack} and run bluegreen rollback --stack ${stack} --to <version>`;
}

/**
 * Refuses (exit 2, nothing changed) a target whose releases are no longer complete in S3: its manifest and every
 * object are read from the buckets themselves, not through the edge, whose cache would hide a pruned release until it
 * expired and then answer viewers 403.
 */
async function requireReleasesInS3(target: Target, outputs: OutputMap, config: ConfigMap, what: string, manifestsOnly = false): Promise<void> {
  const routing = routingOf(config, target.stack.name);
  const buckets = outputs.bucketNames?.value as Record<Slot, string> | undefined;
  if (buckets === undefined) throw new UsageError(`${what}: expected a stack with a bucketNames output; run: pulumi up --stack ${target.stack.name}`);
  for (const slot of ["blue", "green"] as const) {
    const release = routing.slots[slot].release;
    if (release === undefined) continue;
    const manifest = await readManifest(target.s3, buckets[slot], release);
    if (manifest === undefined) throw new UsageError(`${what}: expected ${release} to be complete in ${slot}'s bucket ${buckets[slot]}; its manifest is gone (retention removed it)`);
    if (manifestsOnly) continue;
    await readRelease(target.s3, { bucket: buckets[slot], slot }, manifest).catch((err: Error) => {
      throw new UsageError(`${what}: expected ${release} to be complete in ${slot}'s bucket ${buckets[slot]}; ${err.message}`);
    });
  }
}

/**
 * Refuses (exit 3, nothing changed) to restore a journal's snapshot over updates the journal does not know of: any
 * update after the rollout's base that is not one of its own would be silently undone (another operator's release).
 */
export function refuseMovedPast(stack: string, journal: JournalEntry, history: readonly UpdateSummary[]): void {
  const own = [`bluegreen deploy ${journal.release}:`, `bluegreen revert ${journal.release}:`, `bluegreen rollback: finish the interrupted rollout of ${journal.release}`];
  const foreign = history.filter((u) => u.version > journal.baseVersion && !own.some((prefix) => u.message.startsWith(prefix)));
  if (foreign.length === 0) return;
  const newest = foreign[0];
  throw new OperatorNeededError(
    `stack ${stack} has moved past the interrupted rollout of ${describeJournal(journal)} by ${describeHolder(journal.holder)}: its journal does not know of update ${newest.version} (${newest.message || "no message"})${foreign.length > 1 ? ` and ${foreign.length - 1} more` : ""}; restoring its snapshot would undo them; restore a chosen update instead: bluegreen rollback --stack ${stack} --to <version> (bluegreen history lists them)`,
  );
}

/**
 * `now`: the emergency path. The same routing comes back as without it (an interrupted rollout's pre-rollout config,
 * else the newest earlier settled update serving another release), through one `pulumi up` under a new revision, so
 * the stale-file guard and the lease hold as always. What it leaves out to be quick: reading every object of the
 * releases back from S3 (their manifests must still be there) and the fresh-viewer verification; it returns once
 * the edge reads the new routing, and says to run `bluegreen verify`.
 */
export async function rollback(opts: { stack: string; to?: number; now?: boolean }, reporter: Reporter): Promise<RollbackReport> {
  if (opts.now && opts.to !== undefined) throw new UsageError(`--to = ${opts.to}: expected no --to with --now (--now restores the last stable routing; rollback --to restores a chosen one)`);
  const started = Date.now();
  const target = await openTarget(opts.stack);
  const { stack } = target;
  const log = (message: string) => reporter.emit({ kind: "info", message });
  let lease: Lease | undefined;
  let prober: HttpProber | undefined;
  // Once the rollback changes the stack, SIGINT and SIGTERM never stop it half way (signals.ts): it is what restores
  // the viewers' release. Each one is answered with where it is.
  let stage = "";
  let letGo = () => {};
  try {
    const store = await leaseStoreOf(target);
    const ttlMs = leaseTtlMs();
    // Choose what to restore before taking the lease: a refused rollback (exit 2) leaves no trace.
    const seen = store ? await store.view() : { state: "free" as const };
    if (seen.state === "live") refuseUnlessFree(stack.name, seen);
    const history = await readHistory(stack);
    // Before the lease too: taken over and then released, an interrupted rollout's journal would be gone by the time
    // `pulumi cancel` has ended the stuck update (the order a cancelled CI job takes: docs/RUNBOOK.md).
    refuseInProgress(stack.name, history);
    const outputs = await stack.outputs();
    // The update to restore, checked complete in S3 (also when a journal finished by someone else is gone after the lease).
    const choose = async () => {
      const u = chooseRollbackTarget(history, stack.name, opts.to);
      await requireReleasesInS3(target, outputs, u.config, `--to = ${opts.to ?? u.version}`, opts.now);
      return u;
    };
    // `--to` restores that update whatever a journal says (the way out when a journal is refused below).
    const seenJournal = opts.to === undefined && seen.state === "expired" ? seen.journal : undefined;
    if (seenJournal) refuseMovedPast(stack.name, seenJournal, history);
    const chosen = seenJournal ? undefined : await choose();
    const command = `rollback${opts.to !== undefined ? ` --to ${opts.to}` : ""}${opts.now ? " --now" : ""}`;
    let journal: JournalEntry | undefined;
    if (store) {
      const got = await Lease.acquire(store, currentHolder(command), { ttlMs, finishJournal: true });
      if (!got.ok) {
        refuseUnlessFree(stack.name, got.view);
        throw new Error(`unreachable: lease of ${stack.name} neither taken nor refused`);
      }
      lease = got.lease;
      // A rollback restores a settled state: an abort has nothing to revert, and is said so.
      lease.startHeartbeat((by) => log(`bluegreen abort from ${by} ignored: a rollback is what it would lead to`), () => undefined);
      if (got.tookOver) log(`taking over the lease of ${describeHolder(got.tookOver.holder)}, which expired at ${got.tookOver.expiresAt}`);
      journal = opts.to === undefined ? got.journal : undefined;
    }
    if (journal) refuseMovedPast(stack.name, journal, history);
    prober = new HttpProber(edgeOf(target, outputs));
    // Every routing change carries a revision above every one ever deployed: the stale-file guard has no exception.
    const revision = highestRevision(history) + 1;
    const live = await stack.getAllConfig();
    let restore: ConfigMap;
    let restored: RollbackReport["restored"];
    let message: string;
    if (journal) {
      // Secret values were not written to the journal; the driver never changes them, so the live ones are right.
      restore = withRevision(syncSecretsFromLive(journal.snapshot, live), revision);
      restored = { from: "interrupted-rollout", version: null, revision };
      message = `bluegreen rollback: finish the interrupted rollout of ${journal.release}`;
      log(`finishing the interrupted rollout of ${describeJournal(journal)}, by ${describeHolder(journal.holder)}`);
    } else {
      const to = chosen ?? (await choose());
      // Only the routing keys of the chosen update come back; everything else stays as deployed now (thresholds,
      // approvals, webhooks), and secrets as the stack file holds them (a rotated preview token stays rotated).
      const now = newestSucceeded(history)?.config ?? live;
      restore = syncSecretsFromLive(now, live);
      for (const k of ROUTING_KEYS) if (to.config[k]) restore[k] = to.config[k];
      restore = withRevision(restore, revision);
      restored = { from: "history", version: to.version, revision };
      message = `bluegreen rollback: restore update ${to.version}`;
      log(`restoring the routing of update ${to.version} (${to.endTime ? new Date(to.endTime).toISOString() : "?"})`);
    }
    const config = routingOf(restore, stack.name);
    const release = config.slots[config.stable].release ?? "";
    letGo = holdSignals((signal, count, sinceFirstMs) =>
      log(`${signal}: the rollback is in progress (${stage}${count > 1 ? `, ${(sinceFirstMs / 1000).toFixed(1)} s after the first signal` : ""}); it is not interrupted: wait for it to finish`),
    );
    try {
      stage = "1/4: restoring the config";
      await restoreConfig(stack, restore, live);
      stage = `2/4: pulumi up (revision ${revision})`;
      await stack.up({ message });
      stage = `3/4: waiting for the edge to serve revision ${revision}`;
      await awaitRouting({ prober, clock: systemClock }, revision);
      if (!opts.now) {
        const viewers = Math.max(config.rollout.minSamples, 50);
        stage = `4/4: checking that ${viewers} fresh viewers get ${config.stable}/${release || "(no release)"}`;
        await verifyAllOn({ prober, clock: systemClock }, config.stable, release, viewers, config.verification.healthPath, config.rollout);
      }
      stage = "recording the result";
    } catch (err) {
      // A journal stays for the next rollback, on any machine, without waiting for the lease to expire.
      if (journal) await lease?.abandon();
      throw new OperatorNeededError(`rollback of ${stack.name} did not complete: ${(err as Error).message.split("\n")[0]}; fix the cause, then run: bluegreen rollback --stack ${stack.name}${opts.to !== undefined ? ` --to ${opts.to}` : ""}${faultNote(target)}`);
    }
    await lease?.release();
    const report: RollbackReport = { result: "restored", stack: stack.name, restored, stable: config.stable, release, restoreMs: Date.now() - started, verified: !opts.now };
    await target.audit.append({
      action: "rollback",
      actor: actor(),
      stack: stack.name,
      release,
      slots: config.slots,
      weights: config.weights,
      result: "succeeded",
      reasons: [message],
      timing: { startedAt: new Date(started).toISOString(), durationMs: report.restoreMs },
      details: { restored, ...(opts.now ? { now: true } : {}) },
    });
    await notify(config.webhooks, `bluegreen ${stack.name}: rolled back to ${release} on ${config.stable}`, (m) => reporter.emit({ kind: "info", message: m }));
    const viewer = viewing(stack.name, edgeOf(target, outputs), config);
    reporter.emit({ kind: "info", message: viewingLine(viewer) });
    const outcome = opts.now
      ? `the edge routes 100 percent to ${release} on ${config.stable} (revision ${revision}) after ${report.restoreMs} ms; not verified with viewers: run bluegreen verify --stack ${stack.name}`
      : `${release} on ${config.stable} serves 100 percent again: traffic restored in ${report.restoreMs} ms`;
    // A fault the local cloud still injects on the restored slot is what viewers now get: say so, even on success.
    const done = outcome + faultNote(target);
    reporter.summary.note({ viewer });
    reporter.finish({ ...report, viewer }, done, done);
    return report;
  } finally {
    prober?.close();
    await lease?.release();
    await target.close();
    letGo();
  }
}
