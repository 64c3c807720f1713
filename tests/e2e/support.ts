// Shared by the driver's end-to-end tests: a local cloud in a temp folder, advertised so that the CLI run as a child
// process (BLUEGREEN_STATE_DIR) and in-process calls both reach the very same S3, edge and engine.
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { STAND_IN_ROOT, startLocalCloud, type LocalCloud } from "../../automation/local/cloud";
import { REPO_ROOT } from "../../automation/local/state";
import type { ConfigMap } from "../../automation/port";
import { HttpProber, probeMany } from "../../automation/prober";

export const RELEASES_DIR = path.join(REPO_ROOT, "examples", "widget", "releases");
export const PREVIEW_TOKEN = "local-preview-token-0123456789"; // stacks/Pulumi.local.yaml
const BIN = path.join(REPO_ROOT, "bin", "bluegreen.js");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface E2E {
  stateDir: string;
  cloud: LocalCloud;
  env: NodeJS.ProcessEnv;
  /** Runs `bluegreen ...args` as a child process to completion (`extraEnv` added to its environment; `cwd` the repository). */
  cli(args: string[], extraEnv?: NodeJS.ProcessEnv, cwd?: string): Promise<CliResult>;
  /** Starts `bluegreen ...args`; `done` settles when it exits. */
  start(args: string[], extraEnv?: NodeJS.ProcessEnv, cwd?: string): { child: ChildProcess; done: Promise<CliResult>; stderrSoFar(): string };
  /** A release folder: the 2.0.0 sample with its version and text changed to `release` (distinct bytes). */
  release(id: string): string;
  /** Sets rollout/verification keys on the local stack and applies them (deploy syncs config from the last update). */
  tune(values: Record<string, unknown>): Promise<void>;
  config(): Promise<ConfigMap>;
  close(): Promise<void>;
}

export async function startE2E(): Promise<E2E> {
  const stateDir = mkdtempSync(path.join(tmpdir(), "bluegreen-e2e-"));
  const cloud = await startLocalCloud({ stateDir, advertise: true });
  const work = mkdtempSync(path.join(tmpdir(), "bluegreen-releases-"));
  // The CLI finds the local cloud's Pulumi stand-in first on PATH with the cloud as its backend: non-local stacks take
  // the very path they take against AWS (the SDK runs `pulumi` from PATH), and a missing stack is the CLI's own answer.
  const env = {
    ...process.env,
    BLUEGREEN_STATE_DIR: stateDir,
    PATH: `${path.join(STAND_IN_ROOT, "bin")}${path.delimiter}${process.env.PATH ?? ""}`,
    PULUMI_BACKEND_URL: cloud.pulumiEnv().PULUMI_BACKEND_URL,
    NO_COLOR: "1",
    CI: "true",
    GITHUB_STEP_SUMMARY: "",
  };
  const start = (args: string[], extraEnv: NodeJS.ProcessEnv = {}, cwd = REPO_ROOT) => {
    const run = collect(spawn(process.execPath, [BIN, ...args], { cwd, env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] }));
    return { child: run.child, done: run.done, stderrSoFar: run.stderr };
  };
  return {
    stateDir,
    cloud,
    env,
    cli: (args, extraEnv, cwd) => start(args, extraEnv, cwd).done,
    start,
    release(id) {
      const dir = path.join(work, id);
      cpSync(path.join(RELEASES_DIR, "2.0.0"), dir, { recursive: true });
      writeFileSync(path.join(dir, "version.json"), JSON.stringify({ release: id }) + "\n");
      const index = path.join(dir, "index.html");
      writeFileSync(index, readFileSync(index, "utf8").replace(/2\.0\.0/g, id));
      return dir;
    },
    async tune(values) {
      const stack = await cloud.stack("local");
      const current = await stack.getAllConfig();
      const next: ConfigMap = {};
      for (const [key, value] of Object.entries(values)) {
        const full = `picasso-widget:${key}`;
        const base = current[full] ? (JSON.parse(current[full].value) as Record<string, unknown>) : {};
        next[full] = { value: JSON.stringify({ ...base, ...(value as Record<string, unknown>) }), secret: false };
      }
      await stack.setAllConfig(next);
      await stack.up({ message: "test: tune rollout settings" });
    },
    config: () => cloud.stack("local").then((s) => s.getAllConfig()),
    async close() {
      await cloud.close();
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** A started child whose stdout and stderr are collected; `done` settles when it exits. */
export interface Collected {
  child: ChildProcess;
  done: Promise<CliResult>;
  stderr(): string;
}

export function collect(child: ChildProcess): Collected {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done, stderr: () => stderr };
}

export function parseJson<T>(text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`stdout is not one JSON document:\n${text.slice(0, 2000)}`);
  }
}

/**
 * An S3 endpoint that lets one stack's credentials reach only that stack's buckets, as an IAM role scoped to one
 * environment does: every other bucket answers 403 AccessDenied (S3's XML error), everything else passes through to
 * the local S3 unchanged (signature included).
 * https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
 */
export async function startAccessGateway(s3Endpoint: string, stack: string): Promise<{ url: string; denied: string[]; close(): Promise<void> }> {
  const upstream = new URL(s3Endpoint);
  const denied: string[] = [];
  const allowed = new RegExp(`^/picasso-widget-${stack}-`);
  const server = createServer((req, res) => {
    if (!allowed.test(req.url ?? "")) {
      denied.push(`${req.method} ${req.url}`);
      req.resume();
      res.writeHead(403, { "content-type": "application/xml" }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`);
      return;
    }
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, denied, close: () => new Promise((r) => server.close(() => r())) };
}

/** What `count` fresh viewers of `stack` get through the local edge: "<status> <slot> <release>" → how many. */
export async function freshViewers(cloud: LocalCloud, stack: string, count = 100): Promise<Record<string, number>> {
  const prober = new HttpProber({ url: cloud.url, host: cloud.host(stack) }, 8);
  try {
    const res = await probeMany(prober, Array.from({ length: count }, () => ({ path: "/version.json" })), { concurrency: 8, spreadMs: 0, sleep: async () => {} });
    const seen: Record<string, number> = {};
    for (const r of res) {
      const key = `${r.status} ${r.slot ?? "-"} ${r.release ?? "-"}`;
      seen[key] = (seen[key] ?? 0) + 1;
    }
    return seen;
  } finally {
    prober.close();
  }
}

/**
 * The stack's config is the pre-rollout one again, under a higher routing revision: reverts and rollbacks raise it too,
 * so the stale-stack-file guard has no exception to bypass.
 */
export async function expectConfigRestored(e2e: E2E, before: ConfigMap): Promise<void> {
  const REVISION = "picasso-widget:revision";
  const { [REVISION]: revisionNow, ...now } = await e2e.config();
  const { [REVISION]: revisionBefore, ...then } = before;
  expect(now).to.deep.equal(then);
  expect(Number(revisionNow.value)).to.be.above(Number(revisionBefore.value));
}
