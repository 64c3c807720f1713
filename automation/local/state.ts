// The local cloud's state folder (gitignored): per stack, the config, the update history and what the edge serves.
// Every write is a temp file + fsync + rename, so a reader (or a crash) sees a file either before or after.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import type { ConfigMap, UpdateSummary } from "../port";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
/** Where the CLI keeps the local cloud: $BLUEGREEN_STATE_DIR (tests run the CLI on temp folders) or .bluegreen/local. */
export function localStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.BLUEGREEN_STATE_DIR ? path.resolve(env.BLUEGREEN_STATE_DIR) : path.join(REPO_ROOT, ".bluegreen", "local");
}
const LOCAL_STACK_FILE = path.join(REPO_ROOT, "stacks", "Pulumi.local.yaml");

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
  /** Cache policy TTLs in seconds. */
  ttl: { min: number; default: number; max: number };
  outputs: Record<string, unknown>;
  /** "type::name" → hash of the inputs, to count the next update's resource changes. */
  resources: Record<string, string>;
}

/** An update that was decided but not yet fully written: the redo record that makes `up` atomic. */
interface PendingUpdate {
  summary: StoredSummary;
  applied?: AppliedState;
}

type StoredSummary = Omit<UpdateSummary, "startTime" | "endTime"> & { startTime: string; endTime: string };

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

export function stackDir(stateDir: string, stack: string): string {
  const problem = localStackProblem(stack);
  if (problem !== undefined) throw new Error(`local cloud: stack ${JSON.stringify(stack)} is unknown; expected ${problem}`);
  return path.join(stateDir, "stacks", stack);
}

/** The stack's config as Pulumi reads stacks/Pulumi.local.yaml: objects JSON-encoded, `secure:` values secret. */
export function seedConfig(): ConfigMap {
  const doc = parseYaml(readFileSync(LOCAL_STACK_FILE, "utf8")) as { config?: Record<string, unknown> };
  const config: ConfigMap = {};
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    if (value !== null && typeof value === "object" && !Array.isArray(value) && "secure" in value) {
      config[key] = { value: String((value as { secure: unknown }).secure), secret: true };
    } else {
      config[key] = { value: typeof value === "string" ? value : JSON.stringify(value), secret: false };
    }
  }
  return config;
}

/** One stack's files. Reads finish an interrupted update first, so every caller sees a whole update or none. */
export class StackFiles {
  readonly dir: string;
  private readonly configFile: string;
  private readonly historyFile: string;
  private readonly pendingFile: string;
  readonly appliedFile: string;

  constructor(stateDir: string, stack: string) {
    this.dir = stackDir(stateDir, stack);
    this.configFile = path.join(this.dir, "config.json");
    this.historyFile = path.join(this.dir, "history.json");
    this.appliedFile = path.join(this.dir, "applied.json");
    this.pendingFile = path.join(this.dir, "pending.json");
  }

  readConfig(): ConfigMap {
    const config = readJson<ConfigMap>(this.configFile);
    if (config !== undefined) return config;
    const seeded = seedConfig();
    writeJsonAtomic(this.configFile, seeded);
    return seeded;
  }

  writeConfig(config: ConfigMap): void {
    writeJsonAtomic(this.configFile, config);
  }

  /** Oldest first. */
  readHistory(): UpdateSummary[] {
    this.recover();
    return (readJson<StoredSummary[]>(this.historyFile) ?? []).map(revive);
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
  commit(summary: UpdateSummary, applied?: AppliedState): void {
    const pending: PendingUpdate = { summary: { ...summary, startTime: summary.startTime.toISOString(), endTime: summary.endTime.toISOString() }, applied };
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
    const history = readJson<StoredSummary[]>(this.historyFile) ?? [];
    if (!history.some((h) => h.version === pending.summary.version)) writeJsonAtomic(this.historyFile, [...history, pending.summary]);
    rmSync(this.pendingFile, { force: true });
  }
}

function revive(stored: StoredSummary): UpdateSummary {
  return { ...stored, startTime: new Date(stored.startTime), endTime: new Date(stored.endTime) };
}
