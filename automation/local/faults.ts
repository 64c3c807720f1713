// Injected faults, kept in the state folder (faults.json) so that every process sharing the folder sees them:
// a test or `bluegreen local fault` sets them, the edge (possibly in a foreground `local up`) and the engine obey.
import { statSync } from "node:fs";
import * as path from "node:path";
import { SLOTS, type Slot } from "../../infra/config";
import { readJson, writeJsonAtomic } from "./state";

/** A slot's faults: a share of its requests answered with an error, and a delay added to each of its requests. */
export interface SlotFault {
  /** 0..1 */
  errorRate: number;
  /** 0..60000 */
  latencyMs: number;
}

/** Injected `up` failures: the next `skip` ups succeed as usual, then the `fail` ups after them fail. */
export interface UpFailures {
  skip: number;
  fail: number;
}

interface StackFaults {
  slots?: Partial<Record<Slot, SlotFault>>;
  upFailures?: UpFailures;
  /**
   * Share of the stack's viewer requests whose connection the edge resets without answering: the path between a
   * client and the edge failing (no response at all), which no slot can be blamed for.
   */
  dropRate?: number;
  /** Milliseconds every `up` takes before it applies anything (a slow update, for tests of updates in progress). */
  upDelayMs?: number;
  /**
   * The edge keeps serving the routing it has: a KeyValueStore update that has not reached the edge location yet
   * (on AWS an update propagates in seconds, so the driver verifies the edge instead of trusting the API).
   * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/kvs-with-functions.html
   */
  edgeFrozen?: boolean;
}

interface FaultsFile {
  stacks: Record<string, StackFaults>;
}

export const MAX_LATENCY_MS = 60_000;

/** Returns what is wrong with a fault setting (field, value and what is allowed), or undefined. */
export function slotFaultProblem(slot: string, fault: SlotFault): string | undefined {
  if (!(SLOTS as readonly string[]).includes(slot)) return `slot = ${JSON.stringify(slot)}: expected blue or green`;
  if (!Number.isFinite(fault.errorRate) || fault.errorRate < 0 || fault.errorRate > 1) return `error-rate = ${fault.errorRate}: expected a number from 0 to 1`;
  if (!Number.isInteger(fault.latencyMs) || fault.latencyMs < 0 || fault.latencyMs > MAX_LATENCY_MS) {
    return `latency-ms = ${fault.latencyMs}: expected an integer from 0 to ${MAX_LATENCY_MS}`;
  }
  return undefined;
}

export class FaultStore {
  private readonly file: string;
  private cached: { key: string; faults: FaultsFile } | undefined;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, "faults.json");
  }

  /** The slot's current fault (re-read only when the file was replaced: every write renames a new file in). */
  slotFault(stack: string, slot: Slot): SlotFault | undefined {
    return this.read().stacks[stack]?.slots?.[slot];
  }

  setSlotFault(stack: string, slot: Slot, fault: SlotFault): void {
    const problem = slotFaultProblem(slot, fault);
    if (problem !== undefined) throw new Error(`local fault: ${problem}`);
    this.update(stack, (s) => ({ ...s, slots: { ...s.slots, [slot]: fault } }));
  }

  /** Resets `rate` (0..1) of the stack's viewer connections without a response; 0 stops it. */
  setDropRate(stack: string, rate: number): void {
    if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new Error(`local fault: drop-rate = ${rate}: expected a number from 0 to 1`);
    this.update(stack, (s) => ({ ...s, dropRate: rate > 0 ? rate : undefined }));
  }

  dropRate(stack: string): number {
    return this.read().stacks[stack]?.dropRate ?? 0;
  }

  /** What is injected on the stack that changes what viewers get (slot faults, dropped connections), in words; undefined when nothing is. */
  describe(stack: string): string | undefined {
    const faults = this.read().stacks[stack] ?? {};
    const parts = SLOTS.flatMap((slot) => {
      const f = faults.slots?.[slot];
      if (f === undefined || (f.errorRate === 0 && f.latencyMs === 0)) return [];
      return [`${slot}: error rate ${f.errorRate}${f.latencyMs > 0 ? `, latency ${f.latencyMs} ms` : ""}`];
    });
    if (faults.dropRate) parts.push(`drop rate ${faults.dropRate}`);
    if (faults.edgeFrozen) parts.push("edge frozen");
    return parts.length === 0 ? undefined : parts.join("; ");
  }

  /** Clears the stack's slot faults and injected up failures. */
  clear(stack: string): void {
    this.update(stack, () => ({}));
  }

  /** Makes `skip` ups from now succeed, then the `fail` ups after them fail (e.g. skip 2, fail 1: the third up fails). */
  setUpFailures(stack: string, failures: UpFailures): void {
    this.update(stack, (s) => ({ ...s, upFailures: failures }));
  }

  setUpDelay(stack: string, ms: number): void {
    this.update(stack, (s) => ({ ...s, upDelayMs: ms > 0 ? ms : undefined }));
  }

  freezeEdge(stack: string, frozen: boolean): void {
    this.update(stack, (s) => ({ ...s, edgeFrozen: frozen || undefined }));
  }

  edgeFrozen(stack: string): boolean {
    return this.read().stacks[stack]?.edgeFrozen === true;
  }

  upDelayMs(stack: string): number {
    return this.read().stacks[stack]?.upDelayMs ?? 0;
  }

  /** Called by the engine once per up: counts it and says whether it must fail. */
  takeUpFailure(stack: string): boolean {
    const failures = this.read().stacks[stack]?.upFailures;
    if (failures === undefined || (failures.skip <= 0 && failures.fail <= 0)) return false;
    const fails = failures.skip <= 0;
    const next = fails ? { skip: 0, fail: failures.fail - 1 } : { skip: failures.skip - 1, fail: failures.fail };
    this.update(stack, (s) => ({ ...s, upFailures: next.fail > 0 ? next : undefined }));
    return fails;
  }

  private update(stack: string, change: (faults: StackFaults) => StackFaults): void {
    const current = readJson<FaultsFile>(this.file) ?? { stacks: {} };
    writeJsonAtomic(this.file, { stacks: { ...current.stacks, [stack]: change(current.stacks[stack] ?? {}) } });
    this.cached = undefined;
  }

  private read(): FaultsFile {
    const stat = statSync(this.file, { throwIfNoEntry: false });
    const key = stat === undefined ? "none" : `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
    if (this.cached?.key !== key) this.cached = { key, faults: (stat === undefined ? undefined : readJson<FaultsFile>(this.file)) ?? { stacks: {} } };
    return this.cached.faults;
  }
}
