// The local cloud as one thing: S3, the edge, the fault store and the engine over one state folder, which is also
// the Pulumi CLI stand-in's backend. A foreground `bluegreen local up` advertises its ports in cloud.json; other
// processes on the same folder connect to it instead of starting their own, so they see (and change) the very cloud a
// browser is looking at. Whoever runs the engine also advertises it in engine.json, where the stand-in finds it.
import type { S3Client } from "@aws-sdk/client-s3";
import { LocalWorkspace, PulumiCommand, Stack, StackNotFoundError } from "@pulumi/pulumi/automation";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import * as path from "node:path";
import type { Slot } from "../../infra/config";
import { inOwnProcessGroup } from "../processGroup";
import { startEdge } from "./edge";
import { LocalStack, stackHost } from "./engine";
import { FaultStore, type SlotFault, type UpFailures } from "./faults";
import { runCli, type CliRequest, type CliResult } from "./pulumiCli";
import { localS3Client, startS3 } from "./s3";
import { knownStacks, LOCAL_STACK_FILE, localStateDir, readJson, REPO_ROOT, writeJsonAtomic } from "./state";

/** The stand-in's installation root: PulumiCommand runs `<root>/bin/pulumi`. */
export const STAND_IN_ROOT = path.join(__dirname, "pulumi");

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
  /** Where the stand-in reaches the engine. */
  readonly engineUrl: string;
  /** The working folder of local stacks: a Pulumi.yaml and their stack files, inside the state folder. */
  readonly workDir: string;
  /**
   * The stack through the automation SDK and the stand-in, as the driver opens it. Local stacks (`local`,
   * `local-<name>`) are created on first use from stacks/Pulumi.local.yaml; any other stack must exist.
   */
  stack(name: string, workDir?: string): Promise<Stack>;
  /** The environment that points the Pulumi CLI stand-in at this cloud (PULUMI_BACKEND_URL and the engine). */
  pulumiEnv(): Record<string, string>;
  /** The Host header value that selects a stack on the edge. */
  host(stack: string): string;
  setFault(stack: string, slot: Slot, fault: SlotFault): void;
  /** Resets `rate` (0..1) of the stack's viewer connections with no response (transport failures). */
  dropConnections(stack: string, rate: number): void;
  /** The faults injected on the stack, in words (undefined when none), for failure messages to name. */
  describeFaults(stack: string): string | undefined;
  /** Clears the stack's slot faults and injected up failures. */
  clearFaults(stack: string): void;
  /** The next `skip` ups of the stack succeed, then `fail` ups fail. */
  failUps(stack: string, failures: UpFailures): void;
  /** Every `up` of the stack takes `ms` longer (0 clears it). */
  delayUps(stack: string, ms: number): void;
  /** The edge keeps serving the stack's current routing until unfrozen (a KeyValueStore update not yet propagated). */
  freezeEdge(stack: string, frozen: boolean): void;
  close(): Promise<void>;
}

interface Advertised {
  pid: number;
  edgeUrl: string;
  s3Endpoint: string;
  engineUrl: string;
}

export function cloudFile(stateDir: string): string {
  return path.join(stateDir, "cloud.json");
}

/** Present in every folder the local cloud has used as its state: `local reset` removes no folder without it. */
export const LOCAL_CLOUD_MARKER = ".bluegreen-local-cloud";

function engineFile(stateDir: string): string {
  return path.join(stateDir, "engine.json");
}

let command: Promise<PulumiCommand> | undefined;
/** The stand-in as the SDK's PulumiCommand (it asks `pulumi version` once per process), run as the real CLI is (processGroup.ts). */
export function standIn(): Promise<PulumiCommand> {
  return (command ??= PulumiCommand.get({ root: STAND_IN_ROOT }).then(inOwnProcessGroup));
}

function prepareWorkDir(workDir: string): void {
  if (existsSync(path.join(workDir, "Pulumi.yaml"))) return;
  mkdirSync(path.join(workDir, "stacks"), { recursive: true });
  copyFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
}

/**
 * The engine's endpoint for the stand-in's clients (bin/pulumi, the shell client, and pulumi.js), loopback only:
 * POST /pulumi with the working folder and then each argument, NUL-terminated, as the body → the command's stdout as
 * the body, its exit code and base64 stderr in headers (simple for a shell to take apart). A client that disconnects
 * before its answer (a killed `pulumi up`) leaves its update in progress.
 */
async function startEngine(stackOf: (name: string) => LocalStack, stacks: () => string[], backendUrl: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "POST" || req.url !== "/pulumi") {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let gone = false;
    res.on("close", () => (gone = !res.writableFinished));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const [cwd = "", ...argv] = Buffer.concat(chunks).toString("utf8").split("\0").slice(0, -1);
      const request: CliRequest = { cwd, argv };
      const answer = (result: CliResult) => {
        const headers = { "content-type": "application/octet-stream", "x-pulumi-exit-code": String(result.code), "x-pulumi-stderr": Buffer.from(result.stderr).toString("base64") };
        res.writeHead(200, headers).end(result.stdout);
      };
      runCli(request, { stack: stackOf, stacks, backendUrl, abandoned: () => gone }).then(answer, (err: Error) => answer({ code: 255, stdout: "", stderr: `error: ${err.message}\n` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  // The stand-in's requests keep no connection open; an idle engine must not keep the process alive.
  server.unref();
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
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
  writeJsonAtomic(path.join(stateDir, LOCAL_CLOUD_MARKER), { note: "the bluegreen local cloud's state; `bluegreen local reset` removes this folder" });
  const faults = new FaultStore(stateDir);
  const running = await runningCloud(stateDir);
  if (running !== undefined && opts.advertise) throw new Error(`the local cloud already runs on ${running.edgeUrl} (pid ${running.pid})`);

  let edgeUrl: string;
  let s3Endpoint: string;
  let engineUrl: string;
  let shutdown: () => Promise<void>;
  const s3Of = (endpoint: string) => localS3Client(endpoint);
  if (running !== undefined) {
    ({ edgeUrl, s3Endpoint, engineUrl } = running);
    shutdown = async () => {};
  } else {
    const s3Server = await startS3({ directory: path.join(stateDir, "s3") });
    const edge = await startEdge({ stateDir, s3: localS3Client(s3Server.endpoint), faults, port: opts.port ?? 0 });
    edgeUrl = edge.url;
    s3Endpoint = s3Server.endpoint;
    const engineS3 = s3Of(s3Endpoint);
    const engine = await startEngine((name) => new LocalStack(name, { stateDir, s3: engineS3, edgeUrl, faults }), () => knownStacks(stateDir), pathToFileURL(stateDir).href);
    engineUrl = engine.url;
    writeJsonAtomic(engineFile(stateDir), { pid: process.pid, url: engineUrl });
    if (opts.advertise) writeJsonAtomic(cloudFile(stateDir), { pid: process.pid, edgeUrl, s3Endpoint, engineUrl } satisfies Advertised);
    shutdown = async () => {
      if (opts.advertise) rmSync(cloudFile(stateDir), { force: true });
      if (readJson<{ pid: number }>(engineFile(stateDir))?.pid === process.pid) rmSync(engineFile(stateDir), { force: true });
      await engine.close();
      engineS3.destroy();
      await edge.close();
      await s3Server.close();
    };
  }
  const s3 = s3Of(s3Endpoint);
  const workDir = path.join(stateDir, "work");
  const env = { PULUMI_BACKEND_URL: pathToFileURL(stateDir).href, BLUEGREEN_ENGINE_URL: engineUrl, PULUMI_SKIP_UPDATE_CHECK: "true" };
  return {
    stateDir,
    url: edgeUrl,
    s3Endpoint,
    s3,
    connected: running !== undefined,
    engineUrl,
    workDir,
    pulumiEnv: () => ({ ...env }),
    async stack(name, dir) {
      const isLocal = name === "local" || name.startsWith("local-");
      const folder = dir ?? workDir;
      if (dir === undefined) prepareWorkDir(workDir);
      const ws = await LocalWorkspace.create({ workDir: folder, pulumiCommand: await standIn(), envVars: env });
      try {
        return await Stack.select(name, ws);
      } catch (err) {
        if (!(err instanceof StackNotFoundError) || !isLocal || dir !== undefined) throw err;
        // A local stack starts as the checked-in local stack file describes it, in the cloud's own working folder,
        // so local runs never rewrite stacks/Pulumi.local.yaml.
        copyFileSync(LOCAL_STACK_FILE, path.join(workDir, "stacks", `Pulumi.${name}.yaml`));
        return Stack.create(name, ws);
      }
    },
    host: stackHost,
    setFault: (stack, slot, fault) => faults.setSlotFault(stack, slot, fault),
    dropConnections: (stack, rate) => faults.setDropRate(stack, rate),
    describeFaults: (stack) => faults.describe(stack),
    clearFaults: (stack) => faults.clear(stack),
    failUps: (stack, failures) => faults.setUpFailures(stack, failures),
    delayUps: (stack, ms) => faults.setUpDelay(stack, ms),
    freezeEdge: (stack, frozen) => faults.freezeEdge(stack, frozen),
    async close() {
      s3.destroy();
      await shutdown();
    },
  };
}
