// Shared by the local-cloud tests: a cloud in a temp folder with both sample releases uploaded, and an HTTP client
// that talks to the edge the way a browser would (Host header, cookies), over keep-alive sockets.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Slot } from "../../infra/config";
import { startLocalCloud, type LocalCloud } from "../../automation/local/cloud";
import type { Stack } from "@pulumi/pulumi/automation";
import { LOCAL_STACK_FILE, REPO_ROOT } from "../../automation/local/state";
import type { ConfigMap } from "../../automation/port";
import { parse as parseYaml } from "yaml";
import { buildManifest, uploadRelease } from "../../automation/releases";

export const RELEASES: Record<Slot, string> = { blue: "1.0.0", green: "2.0.0" };
export const RELEASE_DIR = path.join(REPO_ROOT, "examples", "widget", "releases");
export const PREVIEW_TOKEN = "local-preview-token-0123456789"; // stacks/Pulumi.local.yaml

export interface TestCloud {
  cloud: LocalCloud;
  /** Stack `local` through the automation SDK and the Pulumi CLI stand-in. */
  stack: Stack;
  /** Sets the given config keys (JSON-encoded, `revision` raised as the driver would) and runs `up`. */
  deploy(values: Record<string, unknown>, message?: string): Promise<void>;
  get(urlPath: string, opts?: { cookie?: string; headers?: Record<string, string> }): Promise<EdgeResponse>;
  close(): Promise<void>;
}

export interface EdgeResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  ms: number;
}

/** A cloud in a fresh temp folder; stack `local` is up, with 1.0.0 uploaded to blue and 2.0.0 to green. */
export async function startTestCloud(): Promise<TestCloud> {
  const stateDir = mkdtempSync(path.join(tmpdir(), "bluegreen-local-"));
  const cloud = await startLocalCloud({ stateDir });
  const stack = await cloud.stack("local");
  await stack.up({ message: "create the slots" });
  const buckets = (await stack.outputs()).bucketNames.value as Record<Slot, string>;
  for (const slot of ["blue", "green"] as const) {
    const { manifest, bodies } = await buildManifest(path.join(RELEASE_DIR, RELEASES[slot]), RELEASES[slot]);
    await uploadRelease(cloud.s3, { bucket: buckets[slot], slot }, manifest, bodies);
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  let revision = 0;
  const edge = new URL(cloud.url);
  return {
    cloud,
    stack,
    async deploy(values, message) {
      revision += 1;
      const entries = Object.entries({ ...values, revision }).map(([k, v]) => [`picasso-widget:${k}`, { value: JSON.stringify(v), secret: false }]);
      await stack.setAllConfig(Object.fromEntries(entries));
      await stack.up({ message });
    },
    get(urlPath, opts = {}) {
      const started = process.hrtime.bigint();
      return new Promise((resolve, reject) => {
        const headers: Record<string, string> = { host: cloud.host("local"), ...opts.headers };
        if (opts.cookie !== undefined) headers.cookie = opts.cookie;
        const req = request({ host: edge.hostname, port: edge.port, path: urlPath, agent, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: Number(process.hrtime.bigint() - started) / 1e6 }));
        });
        req.on("error", reject).end();
      });
    },
    async close() {
      agent.destroy();
      await cloud.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Runs `count` calls with at most `concurrency` in flight; results in call order. */
export async function many<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

/** The bucket (0..99) the edge gave a first-time viewer, from its Set-Cookie. */
export function bucketCookie(res: EdgeResponse): string | undefined {
  const setCookie = ([] as string[]).concat(res.headers["set-cookie"] ?? []);
  return setCookie.map((c) => /^bg-bucket=(\d+)/.exec(c)?.[1]).find((v) => v !== undefined);
}

export function weights(green: number): { stable: Slot; weights: Record<Slot, number> } {
  return { stable: "blue", weights: { blue: 100 - green, green } };
}

export const BOTH_RELEASES = { slots: { blue: { release: RELEASES.blue }, green: { release: RELEASES.green } } };

/** stacks/Pulumi.local.yaml as the program reads it: objects JSON-encoded (the stand-in's `config --json` does the same). */
export function localStackConfig(): ConfigMap {
  const doc = parseYaml(readFileSync(LOCAL_STACK_FILE, "utf8")) as { config: Record<string, unknown> };
  return Object.fromEntries(Object.entries(doc.config).map(([k, v]) => [k, { value: typeof v === "string" ? v : JSON.stringify(v), secret: false }]));
}
