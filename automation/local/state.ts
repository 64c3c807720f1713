// The local cloud's state folder (gitignored). It is also the Pulumi stand-in's backend (PULUMI_BACKEND_URL=file://<it>):
// per stack, the update history, the update lock and what the edge serves. A stack's config lives where Pulumi keeps
// it, in the working folder's stack file (see pulumiCli.ts). Every write is a temp file + fsync + rename, so a reader
// (or a crash) sees a file either before or after.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import * as path from "node:path";
import type { UpdateSummary } from "../port";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
/** Where the CLI keeps the local cloud: $BLUEGREEN_STATE_DIR (tests run the CLI on temp folders) or .bluegreen/local. */
export function localStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.BLUEGREEN_STATE_DIR ? path.resolve(env.BLUEGREEN_STATE_DIR) : path.join(REPO_ROOT, ".bluegreen", "local");
}
/** The checked-in stack file every local stack starts from. */
export const LOCAL_STACK_FILE = path.join(REPO_ROOT, "stacks", "Pulumi.local.yaml");

/** What the engine applied for a stack: everything the edge needs to serve it. */
export interface AppliedState {
  /** The update (history version) that applied it. */
  version: number;
  /** Routing revision of the applied config (the stale-stack-file guard compares against it). */
  revision: number;
  functions: { viewerRequest?: string; viewerResponse?: string };
  /** KeyValueStore contents (key → value), as `cf.kvs()` reads them. */
  kvs: Record<string, string>;
  /** Origin id → bucket name. */
  origins: Record<string, string>;
  /** Origin used when the viewer-request function selects none. */
  targetOriginId: string;
  /** Response headers policy: header name (lower case) → value and whether it overrides the origin's. */
  responseHeaders: Record<string, { value: string; override: boolean }>;
  /** The response headers policy's CORS settings: the allowed origins ("*" for any). */
  cors?: { origins: string[]; override: boolean };
  /** Cache policy TTLs in seconds. */
  ttl: { min: number; default: number; max: number };
  outputs: Record<string, unknown>;
  /** "type::name" → hash of the inputs, to count the next update's resource changes. */
  resources: Record<string, string>;
}

/** Who runs the stack's current update. */
export interface UpdateLock {
  version: number;
  pid: number;
  host: string;
  startTime: string;
}

/** An update that was decided but not yet fully written: the redo record that makes `up` atomic. */
interface PendingUpdate {
  summary: StoredSummary;
  applied?: AppliedState;
}

/**
 * A history entry as the backend keeps it. Config values keep their stored form (a secret stays encrypted, as in a
 * Pulumi checkpoint); an update in progress has no endTime.
 */
export type StoredSummary = Omit<UpdateSummary, "startTime" | "endTime" | "result" | "config"> & {
  result: UpdateSummary["result"];
  config: Record<string, StoredConfigValue>;
  startTime: string;
  endTime?: string;
};

/** A config value as a stack file holds it: a secret is `{ secure: <ciphertext> }`. */
export type StoredConfigValue = { value: string; objectValue?: unknown; secret: false } | { secure: string; secret: true };

export function writeJsonAtomic(file: string, value: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const fd = openSync(temp, "w");
  try {
    writeSync(fd, JSON.stringify(value, null, 2) + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
}

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Stack names the local cloud knows: `local` and `local-<suffix>` (local stand-ins for other environments). */
export function localStackProblem(stack: string): string | undefined {
  return /^local(-[a-z0-9][a-z0-9-]{0,40})?$/.test(stack) ? undefined : "local or local-<suffix> (a-z 0-9 -)";
}

/**
 * Stack names the local cloud can hold: every stack is served on `<stack>.bluegreen.localhost`, so lower-case host
 * labels (Pulumi itself allows A-Z a-z 0-9 - _ . up to 100 characters:
 * https://github.com/pulumi/pulumi/blob/master/sdk/go/common/tokens/names.go).
 */
export function stackNameProblem(stack: string): string | undefined {
  return /^[a-z0-9][a-z0-9-]{0,40}$/.test(stack) ? undefined : "a stack name of a-z 0-9 - (at most 41 characters)";
}

export function stackDir(stateDir: string, stack: string): string {
  const problem = stackNameProblem(stack);
  if (problem !== undefined) throw new Error(`local cloud: stack ${JSON.stringify(stack)} is unknown; expected ${problem}`);
  return path.join(stateDir, "stacks", stack);
}

/** The stacks the folder holds (each created by `pulumi stack init`, or a local stack's first use), sorted; nothing is created. */
export function knownStacks(stateDir: string): string[] {
  const dir = path.join(stateDir, "stacks");
  const names = existsSync(dir) ? readdirSync(dir) : [];
  return names.filter((name) => stackNameProblem(name) === undefined && existsSync(path.join(dir, name, "stack.json"))).sort();
}

/** One stack's files. Reads finish an interrupted update first, so every caller sees a whole update or none. */
export class StackFiles {
  readonly dir: string;
  private readonly stackFile: string;
  private readonly historyFile: string;
  private readonly lockFile: string;
  private readonly pendingFile: string;
  readonly appliedFile: string;

  constructor(stateDir: string, stack: string) {
    this.dir = stackDir(stateDir, stack);
    this.stackFile = path.join(this.dir, "stack.json");
    this.lockFile = path.join(this.dir, "update.lock");
    this.historyFile = path.join(this.dir, "history.json");
    this.appliedFile = path.join(this.dir, "applied.json");
    this.pendingFile = path.join(this.dir, "pending.json");
  }

  exists(): boolean {
    return existsSync(this.stackFile);
  }

  /** `pulumi stack init`: false when the stack exists already. */
  create(): boolean {
    if (this.exists()) return false;
    writeJsonAtomic(this.stackFile, { created: new Date().toISOString() });
    return true;
  }

  /**
   * Takes the stack's update lock (one update at a time, as the service's update lease): the lock file is created
   * exclusively, so of two racing processes exactly one wins. Returns the holder when another update holds it.
   */
  lock(holder: UpdateLock): UpdateLock | undefined {
    mkdirSync(this.dir, { recursive: true });
    try {
      writeFileSync(this.lockFile, JSON.stringify(holder), { flag: "wx" });
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      return readJson<UpdateLock>(this.lockFile) ?? holder;
    }
  }

  lockHolder(): UpdateLock | undefined {
    return readJson<UpdateLock>(this.lockFile);
  }

  unlock(): void {
    rmSync(this.lockFile, { force: true });
  }

  /** Oldest first. */
  readHistory(): StoredSummary[] {
    this.recover();
    return readJson<StoredSummary[]>(this.historyFile) ?? [];
  }

  readApplied(): AppliedState | undefined {
    this.recover();
    return readJson<AppliedState>(this.appliedFile);
  }

  /** Whether an update is committed but not yet rolled forward (cheap: the edge asks on every request). */
  hasPending(): boolean {
    return existsSync(this.pendingFile);
  }

  /** Records an update: the pending record is the commit point; applied.json and history.json follow from it. */
  commit(summary: StoredSummary, applied?: AppliedState): void {
    const pending: PendingUpdate = { summary, applied };
    writeJsonAtomic(this.pendingFile, pending);
    this.recover();
  }

  /** Rolls a committed update forward (idempotent: several processes may do it at once). */
  private recover(): void {
    const pending = readJson<PendingUpdate>(this.pendingFile);
    if (pending === undefined) return;
    if (pending.applied !== undefined && readJson<AppliedState>(this.appliedFile)?.version !== pending.applied.version) {
      writeJsonAtomic(this.appliedFile, pending.applied);
    }
    // An entry replaces the one of the same version: an update is recorded in progress first, then with its result.
    const history = (readJson<StoredSummary[]>(this.historyFile) ?? []).filter((h) => h.version !== pending.summary.version);
    writeJsonAtomic(this.historyFile, [...history, pending.summary].sort((a, b) => a.version - b.version));
    rmSync(this.pendingFile, { force: true });
  }
}
