// Shared by the benchmarks and the soak: a local cloud in a temp folder that the driver's own code (deploy(),
// rollback(), CLI child processes) reaches through BLUEGREEN_STATE_DIR, release folders with distinct bytes, and a
// reporter that records the driver's progress events instead of printing them.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { RolloutConfig } from "../infra/config";
import { startLocalCloud, type LocalCloud } from "../automation/local/cloud";
import { REPO_ROOT } from "../automation/local/state";
import { Reporter } from "../automation/output";
import type { ConfigMap } from "../automation/port";
import type { ProgressEvent } from "../automation/rollout";

export const STACK = "local";
const SAMPLE_RELEASE = path.join(REPO_ROOT, "examples", "widget", "releases", "2.0.0");

export interface BenchCloud {
  stateDir: string;
  cloud: LocalCloud;
  /** The environment under which CLI children and in-process driver calls reach this cloud. */
  env: NodeJS.ProcessEnv;
  /** The sample release with its version and text changed to `id` (distinct bytes per id). */
  release(id: string): string;
  /** Merges rollout settings into the stack config and applies them with `up`, as an operator would. */
  tuneRollout(values: Partial<RolloutConfig>): Promise<void>;
  /** The same for the verification settings. */
  tuneVerification(values: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

export async function startBenchCloud(prefix: string): Promise<BenchCloud> {
  const stateDir = mkdtempSync(path.join(tmpdir(), `bluegreen-${prefix}-`));
  const work = mkdtempSync(path.join(tmpdir(), `bluegreen-${prefix}-releases-`));
  // Advertised, so CLI children on this folder join this very cloud; in-process deploy() finds it the same way.
  const cloud = await startLocalCloud({ stateDir, advertise: true });
  process.env.BLUEGREEN_STATE_DIR = stateDir;
  const env = { ...process.env, BLUEGREEN_STATE_DIR: stateDir, NO_COLOR: "1", CI: "true", GITHUB_STEP_SUMMARY: "" };
  const tune = async (name: string, values: object) => {
    const stack = await cloud.stack(STACK);
    const key = `picasso-widget:${name}`;
    const current = (await stack.getAllConfig())[key];
    const next: ConfigMap = { [key]: { value: JSON.stringify({ ...(current ? JSON.parse(current.value) : {}), ...values }), secret: false } };
    await stack.setAllConfig(next);
    await stack.up({ message: `bench: tune ${name} settings` });
  };
  return {
    stateDir,
    cloud,
    env,
    release(id) {
      const dir = path.join(work, id);
      cpSync(SAMPLE_RELEASE, dir, { recursive: true });
      writeFileSync(path.join(dir, "version.json"), JSON.stringify({ release: id }) + "\n");
      const index = path.join(dir, "index.html");
      writeFileSync(index, readFileSync(index, "utf8").replace(/2\.0\.0/g, id));
      return dir;
    },
    tuneRollout: (values) => tune("rollout", values),
    tuneVerification: (values) => tune("verification", values),
    async close() {
      await cloud.close();
      delete process.env.BLUEGREEN_STATE_DIR;
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** A Reporter whose output goes nowhere; the events are kept, and `onEvent` sees each as it happens. */
export class RecordingReporter extends Reporter {
  readonly events: ProgressEvent[] = [];
  readonly lines: string[] = [];

  constructor(private readonly onEvent: (e: ProgressEvent) => void = () => {}) {
    const lines: string[] = [];
    super({ json: false, stderr: { write: (s: string) => lines.push(s) > 0 }, stdout: { write: () => true }, env: {} });
    this.lines = lines;
  }

  override emit(event: ProgressEvent): void {
    this.events.push(event);
    this.onEvent(event);
    super.emit(event);
  }
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
