// HTTP probes over real sockets: through the edge as a fresh viewer, or through the preview route to one slot.
import * as http from "node:http";
import * as https from "node:https";
import type { Slot } from "../infra/config";
import type { Sample } from "./analysis";

/** Where viewers reach the distribution. `host` overrides the Host header (the local edge serves stacks by host). */
export interface EdgeTarget {
  url: string;
  host?: string;
  /** The local cloud's edge on loopback (no TLS, no bucket policies to check). */
  local?: boolean;
}

export interface ProbeRequest {
  path: string;
  /** Send the preview header to reach this slot regardless of weights. */
  preview?: { token: string; slot: Slot };
  /** A returning viewer's cookie header; fresh viewers send none. */
  cookie?: string;
  /** Follow redirects on the same edge, as a browser does: an entry point answers with one to its release's URL. */
  follow?: boolean;
}

export interface ProbeResponse extends Sample {
  body: Buffer;
  headers: http.IncomingHttpHeaders;
  /** Requests it took: more than 1 when earlier ones got no response (see TRANSPORT_ATTEMPTS). */
  attempts: number;
}

/** Headers the response-headers policy must add to every response. */
export const SECURITY_HEADERS = ["strict-transport-security", "x-content-type-options", "content-security-policy", "referrer-policy"] as const;
const PREVIEW_HEADER = "x-bluegreen-preview";
const TIMEOUT_MS = 10_000;
/**
 * A probe that gets no response at all (refused, reset, timed out) says nothing about either slot: it is the path
 * between the prober and the edge. It is sent again, up to this many requests in all, before it counts as a transport
 * failure (status 0), which the analysis judges on its own, never as a slot's error. An HTTP error is never retried.
 */
export const TRANSPORT_ATTEMPTS = 3;
const RETRY_PAUSE_MS = 100;
/** A browser gives up after 20 (Fetch, "HTTP-redirect fetch"); an entry point needs one. */
const MAX_REDIRECTS = 5;

export interface Prober {
  probe(request: ProbeRequest): Promise<ProbeResponse>;
  close(): void;
}

export class HttpProber implements Prober {
  private readonly base: URL;
  private readonly agent: http.Agent;

  constructor(readonly target: EdgeTarget, concurrency = 16) {
    this.base = new URL(target.url);
    const Agent = this.base.protocol === "https:" ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  }

  async probe(request: ProbeRequest): Promise<ProbeResponse> {
    let res = await this.retried(request);
    for (let i = 0; request.follow && i < MAX_REDIRECTS && res.status >= 300 && res.status < 400 && typeof res.headers.location === "string"; i++) {
      const next = new URL(res.headers.location, new URL(request.path, this.base));
      // Only on this edge: the probes judge the distribution, not wherever a redirect points.
      if (next.origin !== this.base.origin) break;
      const latencyMs = res.latencyMs;
      res = await this.retried({ ...request, path: next.pathname + next.search });
      res.latencyMs += latencyMs;
    }
    return res;
  }

  private async retried(request: ProbeRequest): Promise<ProbeResponse> {
    let res = await this.once(request);
    for (let attempt = 2; attempt <= TRANSPORT_ATTEMPTS && res.status === 0; attempt++) {
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS * (attempt - 1)));
      res = { ...(await this.once(request)), attempts: attempt };
    }
    return res;
  }

  private once(request: ProbeRequest): Promise<ProbeResponse> {
    const url = new URL(request.path, this.base);
    const headers: Record<string, string> = { "user-agent": "bluegreen-probe" };
    if (this.target.host) headers.host = this.target.host;
    if (request.cookie) headers.cookie = request.cookie;
    if (request.preview) headers[PREVIEW_HEADER] = `${request.preview.token}:${request.preview.slot}`;
    const get = url.protocol === "https:" ? https.get : http.get;
    const started = process.hrtime.bigint();
    return new Promise((resolve) => {
      const req = get(url, { headers, agent: this.agent, timeout: TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(this.sample(request, res.statusCode ?? 0, res.headers, Buffer.concat(chunks), started)));
        res.on("error", () => resolve(this.sample(request, 0, {}, Buffer.alloc(0), started)));
      });
      req.on("timeout", () => req.destroy(new Error("probe timed out")));
      // A refused or reset connection is an error sample (status 0), never an exception: the analysis counts it.
      req.on("error", () => resolve(this.sample(request, 0, {}, Buffer.alloc(0), started)));
    });
  }

  private sample(request: ProbeRequest, status: number, headers: http.IncomingHttpHeaders, body: Buffer, started: bigint): ProbeResponse {
    const slot = headers["x-bluegreen-slot"];
    const release = headers["x-bluegreen-release"];
    return {
      status,
      latencyMs: Number(process.hrtime.bigint() - started) / 1e6,
      slot: slot === "blue" || slot === "green" ? slot : undefined,
      release: typeof release === "string" ? release : undefined,
      preview: request.preview !== undefined,
      missingHeaders: status === 0 ? [] : SECURITY_HEADERS.filter((h) => headers[h] === undefined),
      body,
      headers,
      attempts: 1,
    };
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs `count` probes with at most `concurrency` in flight, spread evenly over `spreadMs`. */
const ABORT_SLICE_MS = 100;

export async function probeMany(
  prober: Prober,
  requests: readonly ProbeRequest[],
  opts: { concurrency: number; spreadMs: number; sleep: (ms: number) => Promise<void>; aborted?: () => boolean; onResult?: (response: ProbeResponse, index: number) => void },
): Promise<ProbeResponse[]> {
  const results: ProbeResponse[] = new Array(requests.length);
  const gap = requests.length > 0 ? opts.spreadMs / requests.length : 0;
  let next = 0;
  const started = Date.now();
  const worker = async () => {
    while (next < requests.length && !opts.aborted?.()) {
      const i = next++;
      const due = started + i * gap;
      // A worker waits for a slot up to `concurrency` gaps ahead: it waits in short slices, so that an abort (a
      // signal, `bluegreen abort`) ends the bake within one slice rather than after every worker's wait.
      for (let wait = due - Date.now(); wait > 0 && !opts.aborted?.(); wait -= ABORT_SLICE_MS) await opts.sleep(Math.min(wait, ABORT_SLICE_MS));
      if (opts.aborted?.()) break;
      results[i] = await prober.probe(requests[i]);
      opts.onResult?.(results[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  return results.filter((r) => r !== undefined);
}
