// One rollout per stack at a time, and a record of the one in flight.
// The lock is a file created with O_EXCL that names its holder; it survives a crash, and a holder whose process
// is gone is reported as an interrupted rollout (the journal says what to restore) instead of being stolen silently.
import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CONFIG_NAMESPACE, type Slot } from "../infra/config";
import type { ConfigMap } from "./port";

export interface LockHolder {
  pid: number;
  host: string;
  user: string;
  command: string;
  startedAt: string;
}

export type RolloutPhase = "staging" | "shifting" | "reverting";

export interface JournalEntry {
  stack: string;
  release: string;
  candidate: Slot;
  stable: Slot;
  phase: RolloutPhase;
  /** Index of the step in flight (-1 while staging). */
  step: number;
  weight: number;
  /** The pre-rollout config. Secret values are not written to disk: they are kept from the live config on restore. */
  snapshot: ConfigMap;
  secretKeys: string[];
  holder: LockHolder;
  updatedAt: string;
}

export function driverStateDir(root: string, stack: string): string {
  return path.join(root, "driver", stack);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function describeHolder(h: LockHolder): string {
  return `${h.user}@${h.host} pid ${h.pid} (${h.command}, since ${h.startedAt})`;
}

export class StackState {
  private readonly lockFile: string;
  private readonly journalFile: string;

  constructor(readonly dir: string) {
    this.lockFile = path.join(dir, "lock.json");
    this.journalFile = path.join(dir, "journal.json");
  }

  /** Takes the lock or returns the current holder (with whether that process still lives on this host). */
  async acquire(command: string): Promise<{ ok: true; holder: LockHolder } | { ok: false; holder: LockHolder; live: boolean }> {
    await fs.mkdir(this.dir, { recursive: true });
    const holder: LockHolder = { pid: process.pid, host: os.hostname(), user: os.userInfo().username, command, startedAt: new Date().toISOString() };
    // Written in full to a private file, then linked into place: link() fails if the lock exists, so the lock file
    // appears atomically with its content and no reader ever sees it empty.
    const tmp = `${this.lockFile}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeAtomic(tmp, JSON.stringify(holder));
    try {
      await fs.link(tmp, this.lockFile);
      return { ok: true, holder };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const current = await this.lockState();
      if (!current) return this.acquire(command);
      return { ok: false, ...current };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /**
   * Replaces the lock of `stale`, a holder that no longer runs. Racing takers are safe: the lock is moved aside
   * atomically, and a taker that finds it moved someone else's fresh lock puts it back.
   */
  async takeOver(stale: LockHolder, command: string): ReturnType<StackState["acquire"]> {
    const aside = `${this.lockFile}.${process.pid}.stale`;
    try {
      await fs.rename(this.lockFile, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      return this.acquire(command);
    }
    const moved = await readHolder(aside);
    if (moved.pid !== stale.pid || moved.startedAt !== stale.startedAt || moved.host !== stale.host) {
      await fs.link(aside, this.lockFile).catch(() => undefined);
    }
    await fs.rm(aside, { force: true });
    return this.acquire(command);
  }

  async holder(): Promise<LockHolder | undefined> {
    try {
      return await readHolder(this.lockFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** The lock's holder and whether it still runs (a holder on another host is assumed to). */
  async lockState(): Promise<{ holder: LockHolder; live: boolean } | undefined> {
    const holder = await this.holder();
    return holder && { holder, live: holder.pid > 0 && (holder.host !== os.hostname() || alive(holder.pid)) };
  }

  /** Releases the lock if this process holds it (never another's). */
  async release(): Promise<void> {
    const holder = await this.holder();
    if (holder && holder.pid === process.pid && holder.host === os.hostname()) await fs.rm(this.lockFile, { force: true });
  }

  async journal(): Promise<JournalEntry | undefined> {
    return readJson<JournalEntry>(this.journalFile);
  }

  async record(entry: JournalEntry): Promise<void> {
    await writeAtomic(this.journalFile, JSON.stringify({ ...entry, updatedAt: new Date().toISOString() }, null, 2));
  }

  async clear(): Promise<void> {
    await fs.rm(this.journalFile, { force: true });
  }
}

/** The preview token is a secret by meaning even where a stack keeps it as plain config (the local stack does). */
const PREVIEW_TOKEN_KEY = `${CONFIG_NAMESPACE}:previewToken`;

/** Splits a config into what may be written to disk and the names of the secret keys left out. */
export function redactSecrets(config: ConfigMap): { snapshot: ConfigMap; secretKeys: string[] } {
  const snapshot: ConfigMap = {};
  const secretKeys: string[] = [];
  for (const [k, v] of Object.entries(config)) {
    if (v.secret || k === PREVIEW_TOKEN_KEY) secretKeys.push(k);
    else snapshot[k] = { ...v };
  }
  return { snapshot, secretKeys };
}

/** A lock file that cannot be read as a holder (damaged by hand or by the disk) names nobody alive. */
async function readHolder(file: string): Promise<LockHolder> {
  const text = await fs.readFile(file, "utf8");
  try {
    const h = JSON.parse(text) as LockHolder;
    if (typeof h.pid === "number" && typeof h.host === "string") return h;
  } catch {
    // fall through
  }
  return { pid: 0, host: os.hostname(), user: "unknown", command: `an unreadable lock file ${file}`, startedAt: "unknown" };
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, "utf8")) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await fs.open(tmp, "w");
  await fh.writeFile(text);
  await fh.sync();
  await fh.close();
  await fs.rename(tmp, file);
}
