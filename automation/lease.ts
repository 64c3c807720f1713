// One rollout per stack at a time, across machines, and a record of the one in flight: a lease and its journal in one
// S3 object next to the stack's audit records (`rollout/<stack>/lease.json` in the audit bucket), so a laptop and a
// CI runner on one stack see the same state. Every write is conditional: the first one ever creates the object
// (`If-None-Match: *`), every later one names the ETag it read (`If-Match`), so two writers never both win: the loser
// gets 412 PreconditionFailed (or 409 ConditionalRequestConflict while the other's write is in flight) and reads again.
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html (If-Match, If-None-Match, 412, 409)
// The lease and the journal share the object, so a journal can only be written by the lease's holder, and `abort`
// (a conditional write of its own) changes the ETag the holder's next heartbeat expects: the holder notices at once.
// Expiry is judged against the writer's clock (expiresAt) by the reader's clock: machines are assumed NTP-synced,
// which is why the lease lasts many heartbeats.
import { GetObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { randomUUID } from "node:crypto";
import * as os from "node:os";
import { CONFIG_NAMESPACE, type Slot } from "../infra/config";
import { OperatorNeededError, StackLockedError, UsageError } from "./errors";
import type { ConfigMap, DeploymentStack } from "./port";

export interface Holder {
  /** Tells two runs apart even on one host with a reused pid. */
  id: string;
  user: string;
  host: string;
  pid: number;
  command: string;
  /** The CI run's page when there is one (GitHub Actions: $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID). */
  runUrl?: string;
  startedAt: string;
}

export type RolloutPhase = "staging" | "shifting" | "reverting";

export interface JournalEntry {
  stack: string;
  release: string;
  candidate: Slot;
  stable: Slot;
  phase: RolloutPhase;
  /** Index of the step in flight (-1 while staging), of `steps`. */
  step: number;
  steps: number[];
  weight: number;
  /** The verdict of the last step judged, if any. */
  lastVerdict?: string;
  /** When the bake in flight ends (ISO time), while one runs. */
  bakeEndsAt?: string;
  /** The newest update of the stack before the rollout changed anything: a restore refuses a stack moved past it. */
  baseVersion: number;
  /** The pre-rollout config. Secret values are never written: they are kept from the live config on restore. */
  snapshot: ConfigMap;
  secretKeys: string[];
  holder: Holder;
  updatedAt: string;
}

interface LeaseRecord {
  stack: string;
  holder: Holder;
  renewedAt: string;
  expiresAt: string;
  journal?: JournalEntry;
  abort?: { by: string; at: string };
  /** Set when the holder let go: the lease is free for the next taker. */
  releasedAt?: string;
  /** How the holder's command ended, when it let go (`bluegreen abort` reports it). */
  outcome?: string;
}

/** What a reader makes of the lease: nobody holds it, its holder renews it, or its holder stopped renewing it. */
export type LeaseView =
  | { state: "free" }
  | { state: "live"; holder: Holder; journal?: JournalEntry; expiresAt: string; abort?: { by: string; at: string } }
  | { state: "expired"; holder: Holder; journal?: JournalEntry; expiresAt: string };

const DEFAULT_TTL_SECONDS = 30;
/** How often a holder reads its lease (an abort is noticed within this) and, every third of the TTL, renews it. */
const POLL_MS = 500;

/** The lease's time to live: $BLUEGREEN_LEASE_SECONDS or 30 s. How long a dead holder keeps others out. */
export function leaseTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.BLUEGREEN_LEASE_SECONDS;
  if (text === undefined || text === "") return DEFAULT_TTL_SECONDS * 1000;
  const seconds = Number(text);
  if (!/^\d+$/.test(text.trim()) || seconds < 2 || seconds > 3600) {
    throw new UsageError(`BLUEGREEN_LEASE_SECONDS = ${JSON.stringify(text)}: expected a whole number of seconds from 2 to 3600 (default ${DEFAULT_TTL_SECONDS})`);
  }
  return seconds * 1000;
}

/** Who runs this process, for a lease or an abort mark. */
export function currentHolder(command: string, env: NodeJS.ProcessEnv = process.env): Holder {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: run } = env;
  const runUrl = server && repo && run ? `${server}/${repo}/actions/runs/${run}` : undefined;
  return { id: randomUUID(), user: os.userInfo().username, host: os.hostname(), pid: process.pid, command, ...(runUrl ? { runUrl } : {}), startedAt: new Date().toISOString() };
}

export function describeHolder(h: Holder): string {
  return `${h.user}@${h.host} pid ${h.pid} (${h.command}, since ${h.startedAt})${h.runUrl ? `, run ${h.runUrl}` : ""}`;
}

/** "3.0.0 shifting at 25% on blue (step 2 of 5)". */
export function describeJournal(j: JournalEntry): string {
  return `${j.release} ${j.phase} at ${j.weight}% on ${j.candidate}${j.step >= 0 ? ` (step ${j.step + 1} of ${j.steps.length})` : ""}`;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** 412: someone wrote since we read; 409: someone's conditional write is in flight; 404: an If-Match on a key now gone. */
function lostRace(err: unknown): boolean {
  const status = statusOf(err);
  return status === 412 || status === 409 || status === 404;
}

/** The stack's lease object: `rollout/<stack>/lease.json` in its audit bucket. */
export class LeaseStore {
  readonly key: string;
  readonly location: string;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    readonly stack: string,
  ) {
    this.key = `rollout/${stack}/lease.json`;
    this.location = `s3://${bucket}/${this.key}`;
  }

  async read(): Promise<{ record: LeaseRecord; etag: string } | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key }));
      const text = (await object.Body?.transformToString("utf8")) ?? "";
      return { record: JSON.parse(text) as LeaseRecord, etag: object.ETag ?? "" };
    } catch (err) {
      if (err instanceof NoSuchKey || statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** Writes `record` if the object is still `etag` (undefined: if there is no object yet); returns the new ETag. */
  async write(record: LeaseRecord, etag: string | undefined): Promise<string> {
    const condition = etag === undefined ? { IfNoneMatch: "*" } : { IfMatch: etag };
    const out = await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key, Body: JSON.stringify(record, null, 2), ContentType: "application/json", ...condition }));
    return out.ETag ?? "";
  }

  async view(now = Date.now()): Promise<LeaseView> {
    return viewOf((await this.read())?.record, now);
  }
}

function viewOf(record: LeaseRecord | undefined, now: number): LeaseView {
  if (record === undefined || record.releasedAt !== undefined) return { state: "free" };
  const { holder, journal, expiresAt } = record;
  if (Date.parse(expiresAt) > now) return { state: "live", holder, journal, expiresAt, ...(record.abort ? { abort: record.abort } : {}) };
  return { state: "expired", holder, journal, expiresAt };
}

/** Where the stack's lease lives: its audit bucket, which exists from the stack's first `up` on. */
export async function leaseStoreOf(target: { stack: DeploymentStack; s3: S3Client }): Promise<LeaseStore | undefined> {
  const bucket = (await target.stack.outputs()).auditBucket?.value as string | undefined;
  return bucket ? new LeaseStore(target.s3, bucket, target.stack.name) : undefined;
}

export type Acquired =
  | { ok: true; lease: Lease; tookOver?: Extract<LeaseView, { state: "expired" }>; journal?: JournalEntry }
  | { ok: false; view: Extract<LeaseView, { state: "live" | "expired" }> };

/**
 * A lease this process holds. A heartbeat re-reads it every POLL_MS and renews it every third of its TTL; it reports
 * an abort mark once, and a lease another process took over (this one stopped renewing past expiry) as lost.
 */
export class Lease {
  private timer: NodeJS.Timeout | undefined;
  /** Writes are chained: the heartbeat and the rollout's journal writes never race each other. */
  private queue: Promise<unknown> = Promise.resolve();
  private abortSeen = false;
  private lost: string | undefined;
  /** Released or abandoned: later calls of either change nothing. */
  private letGo = false;

  private constructor(
    readonly store: LeaseStore,
    readonly holder: Holder,
    private held: LeaseRecord,
    private etag: string,
    readonly ttlMs: number,
  ) {}

  /**
   * Takes the lease when nobody holds it, or its holder stopped renewing it and left no journal. `finishJournal`
   * (rollback) also takes an expired lease with a journal, and returns that journal to finish.
   */
  static async acquire(store: LeaseStore, holder: Holder, opts: { ttlMs: number; finishJournal?: boolean }): Promise<Acquired> {
    for (let attempt = 0; ; attempt++) {
      const current = await store.read();
      const view = viewOf(current?.record, Date.now());
      if (view.state === "live" || (view.state === "expired" && view.journal !== undefined && !opts.finishJournal)) return { ok: false, view };
      const now = Date.now();
      const record: LeaseRecord = { stack: store.stack, holder, renewedAt: new Date(now).toISOString(), expiresAt: new Date(now + opts.ttlMs).toISOString() };
      const journal = view.state === "expired" ? view.journal : undefined;
      // A journal taken over stays in the record until the taker finishes it: killed meanwhile, the next one finds it.
      if (journal) record.journal = journal;
      try {
        const etag = await store.write(record, current?.etag);
        const lease = new Lease(store, holder, record, etag, opts.ttlMs);
        return { ok: true, lease, ...(view.state === "expired" ? { tookOver: view } : {}), ...(journal ? { journal } : {}) };
      } catch (err) {
        if (!lostRace(err) || attempt >= 5) throw err;
      }
    }
  }

  /** Starts the heartbeat: `onAbort` once when someone marks the lease aborted, `onLost` once when another took it. */
  startHeartbeat(onAbort: (by: string) => void, onLost: (by: string) => void): void {
    const tick = () => {
      this.queue = this.queue
        .then(() => this.beat(onAbort, onLost))
        .catch(() => undefined) // a failed read or write is retried at the next tick; expiry is many ticks away
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, POLL_MS);
        });
    };
    this.timer = setTimeout(tick, POLL_MS);
  }

  private async beat(onAbort: (by: string) => void, onLost: (by: string) => void): Promise<void> {
    if (this.lost !== undefined) return;
    const current = await this.store.read();
    if (current !== undefined && current.etag !== this.etag) {
      if (current.record.holder.id !== this.holder.id || current.record.releasedAt !== undefined) {
        this.lost = current.record.releasedAt !== undefined ? "a release by another process" : describeHolder(current.record.holder);
        onLost(this.lost);
        return;
      }
      this.held = current.record;
      this.etag = current.etag;
    }
    if (this.held.abort && !this.abortSeen) {
      this.abortSeen = true;
      onAbort(this.held.abort.by);
    }
    if (Date.now() - Date.parse(this.held.renewedAt) >= this.ttlMs / 3) await this.update((r) => r);
  }

  /** Writes a change (the expiry renewed with it); a write lost to an abort mark is redone on the record now there. */
  private async update(change: (r: LeaseRecord) => LeaseRecord): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.lost !== undefined) throw new Error(`the stack's lease was taken by ${this.lost}`);
      const now = Date.now();
      const next = { ...change({ ...this.held }), renewedAt: new Date(now).toISOString(), expiresAt: new Date(now + this.ttlMs).toISOString() };
      try {
        this.etag = await this.store.write(next, this.etag);
        this.held = next;
        return;
      } catch (err) {
        if (!lostRace(err) || attempt >= 5) throw err;
        const current = await this.store.read();
        if (current === undefined || current.record.holder.id !== this.holder.id || current.record.releasedAt !== undefined) {
          this.lost = current ? describeHolder(current.record.holder) : "a deletion of the lease object";
          throw new Error(`the stack's lease was taken by ${this.lost}`);
        }
        this.held = current.record;
        this.etag = current.etag;
      }
    }
  }

  private enqueue(change: (r: LeaseRecord) => LeaseRecord): Promise<void> {
    const run = this.queue.then(() => this.update(change));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Records the rollout's progress. Secret values never reach it: see {@link redactSecrets}. */
  record(entry: JournalEntry): Promise<void> {
    return this.enqueue((r) => ({ ...r, journal: { ...entry, updatedAt: new Date().toISOString() } }));
  }

  /** The rollout is over (completed or reverted): nothing is left to finish. */
  clear(): Promise<void> {
    return this.enqueue(({ journal: _gone, ...r }) => r);
  }

  /** Stops the heartbeat; false when the lease was already let go. */
  private stop(): boolean {
    clearTimeout(this.timer);
    this.timer = undefined;
    const first = !this.letGo;
    this.letGo = true;
    return first;
  }

  /** Lets go, saying how the command ended: the lease is free at once. A lease already taken by another is left alone. */
  async release(outcome?: string): Promise<void> {
    if (!this.stop()) return;
    await this.enqueue((r) => ({ ...r, releasedAt: new Date().toISOString(), ...(outcome ? { outcome } : {}) })).catch(() => undefined);
  }

  /**
   * Lets go but leaves the journal (a revert that did not complete): the lease is expired at once, so `rollback` on any
   * machine may finish the journal without waiting for the TTL.
   */
  async abandon(): Promise<void> {
    if (!this.stop()) return;
    await this.queue;
    if (this.lost !== undefined) return;
    const past = new Date(Date.now() - 1).toISOString();
    await this.store.write({ ...this.held, expiresAt: past }, this.etag).catch(() => undefined);
  }
}

/**
 * How the aborted holder's lease ended: released with its outcome (`rolled-back` when the abort reverted it), expired
 * (its holder died: `rollback` finishes it), or taken by another holder. Polls until one of these.
 */
export async function awaitLetGo(store: LeaseStore, holder: Holder, pollMs = POLL_MS): Promise<{ how: "released"; outcome?: string } | { how: "expired" | "taken" }> {
  for (;;) {
    const current = await store.read();
    if (current === undefined || current.record.holder.id !== holder.id) return { how: "taken" };
    if (current.record.releasedAt !== undefined) return { how: "released", ...(current.record.outcome ? { outcome: current.record.outcome } : {}) };
    if (Date.parse(current.record.expiresAt) <= Date.now()) return { how: "expired" };
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Marks the stack's live lease aborted (a conditional write); returns its holder, or the view when none is live. */
export async function markAborted(store: LeaseStore, by: Holder): Promise<{ ok: true; holder: Holder; journal?: JournalEntry } | { ok: false; view: LeaseView }> {
  for (let attempt = 0; ; attempt++) {
    const current = await store.read();
    const view = viewOf(current?.record, Date.now());
    if (view.state !== "live" || current === undefined) return { ok: false, view };
    try {
      await store.write({ ...current.record, abort: { by: describeHolder(by), at: new Date().toISOString() } }, current.etag);
      return { ok: true, holder: view.holder, journal: view.journal };
    } catch (err) {
      if (!lostRace(err) || attempt >= 5) throw err;
    }
  }
}

/** The preview token is a secret by meaning even where a stack keeps it as plain config (the local stack does). */
const PREVIEW_TOKEN_KEY = `${CONFIG_NAMESPACE}:previewToken`;

/** Splits a config into what may be written to the journal and the names of the secret keys left out. */
export function redactSecrets(config: ConfigMap): { snapshot: ConfigMap; secretKeys: string[] } {
  const snapshot: ConfigMap = {};
  const secretKeys: string[] = [];
  for (const [k, v] of Object.entries(config)) {
    if (v.secret || k === PREVIEW_TOKEN_KEY) secretKeys.push(k);
    else snapshot[k] = { ...v };
  }
  return { snapshot, secretKeys };
}

/** Refuses (nothing changed) unless nobody holds the stack's lease: exit 2 for a live holder, 3 for an interrupted rollout. */
export function refuseUnlessFree(stack: string, view: LeaseView): void {
  if (view.state === "live") {
    throw new StackLockedError(`stack ${stack} is locked by a rollout in progress: ${describeHolder(view.holder)}${view.journal ? `; ${describeJournal(view.journal)}` : ""}`);
  }
  if (view.state === "expired" && view.journal) {
    throw new OperatorNeededError(`stack ${stack} has an interrupted rollout of ${describeJournal(view.journal)}, by ${describeHolder(view.holder)}; run: bluegreen rollback --stack ${stack}`);
  }
}

/**
 * Takes the stack's lease for a rollout, or refuses as {@link refuseUnlessFree} does. An expired lease without a
 * journal (its holder died outside a rollout) is taken over, and said so.
 */
export async function takeLease(store: LeaseStore, holder: Holder, opts: { ttlMs: number; log: (message: string) => void }): Promise<Lease> {
  const got = await Lease.acquire(store, holder, { ttlMs: opts.ttlMs });
  if (!got.ok) {
    refuseUnlessFree(store.stack, got.view);
    throw new Error(`unreachable: lease of ${store.stack} neither taken nor refused`);
  }
  if (got.tookOver) opts.log(`taking over the lease of ${describeHolder(got.tookOver.holder)}, which expired at ${got.tookOver.expiresAt} and left no rollout behind`);
  return got.lease;
}
