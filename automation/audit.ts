// The audit trail: every deploy, promotion, approval, rollback and automatic revert, one JSON line each, every line
// carrying the SHA-256 of the exact bytes of the line before it. Editing, removing or reordering a line breaks the
// chain at that line, which `verifyAuditLines` names. Stored with the stack: a file in the local state folder, or one
// S3 object per record on AWS (a versioned bucket; nothing is ever overwritten in place).
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { mkdir, open, readFile } from "node:fs/promises";
import * as path from "node:path";
import { z } from "zod";
import { sha256Hex } from "../infra/routing";
import { OperatorNeededError } from "./errors";

const AUDIT_ACTIONS = ["deploy", "promote", "approval", "rollback", "revert"] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];
const AUDIT_RESULTS = ["succeeded", "rolled-back", "failed", "approved", "refused"] as const;
export type AuditResult = (typeof AUDIT_RESULTS)[number];

/** The prevHash of the first record: no line precedes it. */
export const GENESIS_HASH = "0".repeat(64);

const iso = z.iso.datetime({ offset: true });
const slotRelease = z.strictObject({ release: z.string().optional() });
const auditRecordSchema = z.strictObject({
  seq: z.number().int().min(1),
  time: iso,
  prevHash: z.string().regex(/^[0-9a-f]{64}$/),
  action: z.enum(AUDIT_ACTIONS),
  actor: z.string().min(1),
  stack: z.string().min(1),
  /** The release the action is about (deployed, promoted, approved, restored); absent when there is none. */
  release: z.string().optional(),
  slots: z.strictObject({ blue: slotRelease, green: slotRelease }),
  weights: z.strictObject({ blue: z.number(), green: z.number() }),
  result: z.enum(AUDIT_RESULTS),
  reasons: z.array(z.string()),
  timing: z.strictObject({ startedAt: iso, durationMs: z.number().min(0) }),
  details: z.record(z.string(), z.unknown()).optional(),
});

export type AuditRecord = z.infer<typeof auditRecordSchema>;
/** What a caller appends: the log adds seq, time and prevHash itself. */
export type AuditEntry = Omit<AuditRecord, "seq" | "time" | "prevHash">;

export type AuditVerdict = { ok: true; count: number } | { ok: false; line: number; reason: string };

/**
 * Checks a log's lines (1-based numbers in the verdict). A line counts as good only when the next line vouches for
 * it (its prevHash is this line's SHA-256), so the verdict names the first line the chain no longer vouches for:
 * an edited line, the place a line was removed, or the first of two swapped lines. The last line has no successor
 * yet; it is covered once the next record is appended (and, on S3, by the object's version history).
 */
export function verifyAuditLines(lines: readonly string[]): AuditVerdict {
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(lines[i]);
    } catch {
      return { ok: false, line, reason: "not a JSON record (edited or truncated)" };
    }
    const record = auditRecordSchema.safeParse(parsed);
    if (!record.success) {
      const issue = record.error.issues[0];
      return { ok: false, line, reason: `broken record: ${issue.path.join(".") || "(record)"}: ${issue.message}` };
    }
    // seq before the hash: after a removal the line before the gap is intact, the gap itself is the fault.
    if (record.data.seq !== line) {
      return { ok: false, line, reason: `seq ${record.data.seq} where ${line} belongs: a record was removed here or the records were reordered` };
    }
    const expected = i === 0 ? GENESIS_HASH : sha256Hex(lines[i - 1]);
    if (record.data.prevHash !== expected) {
      return i === 0
        ? { ok: false, line, reason: "the first record's prevHash is not the genesis value" }
        : { ok: false, line: line - 1, reason: `its SHA-256 is not the prevHash line ${line} recorded: line ${line - 1} was changed after it was written` };
    }
  }
  return { ok: true, count: lines.length };
}

/** Where a stack's audit lines live. Lines are the exact bytes that were hashed, without line terminators. */
export interface AuditStore {
  /** Shown in messages: a file path or an s3:// prefix. */
  readonly location: string;
  readLines(): Promise<string[]>;
  /** Adds record number `seq`; refuses when a record with that number already exists. */
  appendLine(seq: number, line: string): Promise<void>;
}

const REDACTED = "[redacted]";
// Defence in depth: callers never pass secrets, but a value under a name like these is replaced all the same.
const SECRET_NAME = /token|secret|password|passphrase|credential|authorization/i;

function redact(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === "string") return secrets.reduce((text, secret) => text.split(secret).join(REDACTED), value);
  if (Array.isArray(value)) return value.map((v) => redact(v, secrets));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_NAME.test(k) ? REDACTED : redact(v, secrets)]));
  }
  return value;
}

export class AuditLog {
  private readonly secrets: string[];
  private readonly now: () => Date;

  /** `secrets`: values (such as the preview token) replaced wherever they appear in an entry. */
  constructor(
    readonly store: AuditStore,
    opts: { secrets?: readonly (string | undefined)[]; now?: () => Date } = {},
  ) {
    // Very short values would redact ordinary words; real secrets here are 16+ characters.
    this.secrets = (opts.secrets ?? []).filter((s): s is string => s !== undefined && s.length >= 8);
    this.now = opts.now ?? (() => new Date());
  }

  /** Appends an entry as the next record: seq, time and prevHash are computed here. */
  async append(entry: AuditEntry): Promise<AuditRecord> {
    const lines = await this.store.readLines();
    const last = lines.at(-1);
    const clean = redact(entry, this.secrets) as AuditEntry;
    // Fixed key order, so a record's bytes depend on its values only.
    const record = auditRecordSchema.parse({
      seq: last === undefined ? 1 : seqOf(last, lines.length) + 1,
      time: this.now().toISOString(),
      prevHash: last === undefined ? GENESIS_HASH : sha256Hex(last),
      action: clean.action,
      actor: clean.actor,
      stack: clean.stack,
      release: clean.release,
      slots: clean.slots,
      weights: clean.weights,
      result: clean.result,
      reasons: clean.reasons,
      timing: clean.timing,
      details: clean.details,
    });
    await this.store.appendLine(record.seq, JSON.stringify(record));
    return record;
  }

  /** The records, oldest first. Throws naming the first line that is not a record (`verify` says more). */
  async read(): Promise<AuditRecord[]> {
    return (await this.store.readLines()).map((line, i) => {
      const record = (() => {
        try {
          return auditRecordSchema.safeParse(JSON.parse(line));
        } catch {
          return undefined;
        }
      })();
      if (!record?.success) throw new OperatorNeededError(`audit log ${this.store.location}: line ${i + 1} is not an audit record; run: bluegreen audit verify`);
      return record.data;
    });
  }

  async verify(): Promise<AuditVerdict> {
    return verifyAuditLines(await this.store.readLines());
  }
}

// The next seq follows the last record's own number, not the line count, so a removed line stays a visible gap.
function seqOf(line: string, fallback: number): number {
  try {
    const seq = (JSON.parse(line) as { seq?: unknown }).seq;
    return typeof seq === "number" && Number.isInteger(seq) ? seq : fallback;
  } catch {
    return fallback;
  }
}

function splitLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** A JSON-lines file, appended with O_APPEND and fsync'd before the append returns. */
export class FileAuditStore implements AuditStore {
  constructor(readonly location: string) {}

  async readLines(): Promise<string[]> {
    try {
      return splitLines(await readFile(this.location, "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  // Concurrent appenders are kept apart by the stack's rollout lock; a race would still show as a duplicate seq.
  async appendLine(_seq: number, line: string): Promise<void> {
    await mkdir(path.dirname(this.location), { recursive: true });
    const file = await open(this.location, "a");
    try {
      await file.write(line + "\n");
      await file.sync();
    } finally {
      await file.close();
    }
  }
}

/**
 * One object per record under `audit/<stack>/<seq, 10 digits>.json`, so an append never rewrites an object. The key
 * holds the seq alone: two writers racing for the same seq then collide on one key, and the conditional write
 * (`If-None-Match: *`) lets only one of them in.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
 */
export class S3AuditStore implements AuditStore {
  readonly location: string;
  private readonly prefix: string;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    stack: string,
  ) {
    this.prefix = auditPrefix(stack);
    this.location = `s3://${bucket}/${this.prefix}`;
  }

  async readLines(): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    // Zero-padded seqs: lexical order is record order.
    keys.sort();
    const lines: string[] = [];
    for (const key of keys) {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      lines.push((await object.Body?.transformToString("utf8")) ?? "");
    }
    return lines;
  }

  async appendLine(seq: number, line: string): Promise<void> {
    const key = `${this.prefix}${String(seq).padStart(10, "0")}.json`;
    // The create itself is the check (the local cloud's S3 enforces it too): no window between a look and the write.
    try {
      await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: line, ContentType: "application/json", IfNoneMatch: "*" }));
    } catch (err) {
      // 412 PreconditionFailed: another writer wrote this seq; 409 ConditionalRequestConflict: another writer's create of
      // it is in flight. Neither is retried blindly: the record would no longer follow the line it hashed.
      // https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 412 || status === 409) throw this.conflict(seq);
      throw err;
    }
  }

  private conflict(seq: number): OperatorNeededError {
    return new OperatorNeededError(`audit log ${this.location}: record ${seq} already exists (another writer appended it); nothing was overwritten; run: bluegreen audit verify`);
  }
}

/** The S3 key prefix of a stack's audit records. */
function auditPrefix(stack: string): string {
  return `audit/${stack}/`;
}


/** One line for `history`: seq, time, action, stack, release, actor, result, routing, reasons. */
export function formatAuditRecord(r: AuditRecord): string {
  const releases = `blue ${r.weights.blue}% ${r.slots.blue.release ?? "-"} / green ${r.weights.green}% ${r.slots.green.release ?? "-"}`;
  const approvers = Array.isArray(r.details?.approvers)
    ? ` approvers: ${(r.details.approvers as { login?: unknown; roles?: unknown }[]).map((a) => `${String(a.login)}${Array.isArray(a.roles) && a.roles.length > 0 ? ` (${a.roles.join(", ")})` : ""}`).join(", ")}`
    : "";
  const reasons = r.reasons.length > 0 ? ` — ${r.reasons.join("; ")}` : "";
  return `#${r.seq} ${r.time} ${r.action} ${r.stack} ${r.release ?? "-"} by ${r.actor}: ${r.result} [${releases}] ${Math.round(r.timing.durationMs / 1000)}s${approvers}${reasons}`;
}
