// The local cloud as one thing: S3, the edge, the fault store and the engine's stacks over one state folder.
// A foreground `bluegreen local up` advertises its ports in cloud.json; other processes on the same folder
// connect to it instead of starting their own, so they see (and change) the very cloud a browser is looking at.
import type { S3Client } from "@aws-sdk/client-s3";
import { rmSync } from "node:fs";
import * as path from "node:path";
import type { Slot } from "../../infra/config";
import { startEdge } from "./edge";
import { LocalStack, stackHost } from "./engine";
import { FaultStore, type SlotFault, type UpFailures } from "./faults";
import { localS3Client, startS3 } from "./s3";
import { localStateDir, readJson, writeJsonAtomic } from "./state";

export interface LocalCloudOptions {
  /** @default <repo>/.bluegreen/local */
  stateDir?: string;
  /** Edge port; 0 picks a free one. @default 0 */
  port?: number;
  /** Write cloud.json so other processes connect to this cloud (the foreground `local up`). @default false */
  advertise?: boolean;
}

export interface LocalCloud {
  readonly stateDir: string;
  /** The edge's loopback URL; send `Host: <stack>.bluegreen.localhost` to reach a stack. */
  readonly url: string;
  readonly s3Endpoint: string;
  readonly s3: S3Client;
  /** True when this process connected to a cloud another process runs. */
  readonly connected: boolean;
  stack(name: string): LocalStack;
  /** The Host header value that selects a stack on the edge. */
  host(stack: string): string;
  setFault(stack: string, slot: Slot, fault: SlotFault): void;
  /** Clears the stack's slot faults and injected up failures. */
  clearFaults(stack: string): void;
  /** The next `skip` ups of the stack succeed, then `fail` ups fail. */
  failUps(stack: string, failures: UpFailures): void;
  close(): Promise<void>;
}

interface Advertised {
  pid: number;
  edgeUrl: string;
  s3Endpoint: string;
}

export function cloudFile(stateDir: string): string {
  return path.join(stateDir, "cloud.json");
}

/**
 * The running foreground cloud on this folder: its edge must answer the health check with the advertised pid (a
 * cloud.json left by a killed process, or a port since reused by something else, does not count).
 */
export async function runningCloud(stateDir: string): Promise<Advertised | undefined> {
  const advertised = readJson<Advertised>(cloudFile(stateDir));
  if (advertised === undefined) return undefined;
  try {
    const res = await fetch(`${advertised.edgeUrl}/_bluegreen/health`, { signal: AbortSignal.timeout(2000) });
    const health = res.ok ? ((await res.json()) as { pid?: unknown }) : undefined;
    return health?.pid === advertised.pid ? advertised : undefined;
  } catch {
    return undefined;
  }
}

export async function startLocalCloud(opts: LocalCloudOptions = {}): Promise<LocalCloud> {
  const stateDir = path.resolve(opts.stateDir ?? localStateDir());
  const faults = new FaultStore(stateDir);
  const running = await runningCloud(stateDir);
  if (running !== undefined && opts.advertise) throw new Error(`the local cloud already runs on ${running.edgeUrl} (pid ${running.pid})`);

  let edgeUrl: string;
  let s3Endpoint: string;
  let shutdown: () => Promise<void>;
  if (running !== undefined) {
    ({ edgeUrl, s3Endpoint } = running);
    shutdown = async () => {};
  } else {
    const s3Server = await startS3({ directory: path.join(stateDir, "s3") });
    const edge = await startEdge({ stateDir, s3: localS3Client(s3Server.endpoint), faults, port: opts.port ?? 0 });
    edgeUrl = edge.url;
    s3Endpoint = s3Server.endpoint;
    if (opts.advertise) writeJsonAtomic(cloudFile(stateDir), { pid: process.pid, edgeUrl, s3Endpoint } satisfies Advertised);
    shutdown = async () => {
      if (opts.advertise) rmSync(cloudFile(stateDir), { force: true });
      await edge.close();
      await s3Server.close();
    };
  }
  const s3 = localS3Client(s3Endpoint);
  const stacks = new Map<string, LocalStack>();
  return {
    stateDir,
    url: edgeUrl,
    s3Endpoint,
    s3,
    connected: running !== undefined,
    stack(name) {
      let stack = stacks.get(name);
      if (stack === undefined) stacks.set(name, (stack = new LocalStack(name, { stateDir, s3, edgeUrl, faults })));
      return stack;
    },
    host: stackHost,
    setFault: (stack, slot, fault) => faults.setSlotFault(stack, slot, fault),
    clearFaults: (stack) => faults.clear(stack),
    failUps: (stack, failures) => faults.setUpFailures(stack, failures),
    async close() {
      s3.destroy();
      await shutdown();
    },
  };
}
