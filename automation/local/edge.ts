// The local edge: one HTTP server on loopback standing in for the CloudFront distribution of every local stack.
// Per request it runs the deployed viewer-request code in the runtime shim with the applied KVS contents, reads
// the chosen origin's bucket through the S3 SDK (signed: the buckets are private, as with OAC), runs the
// viewer-response code, adds the response headers policy, and caches origin responses keyed as CloudFront keys them.
//
// Departures from CloudFront (each also noted where it happens):
// - Plain HTTP only: the behaviour's viewer protocol policy `redirect-to-https` cannot be emulated without a
//   certificate for the loopback host, so no HTTP→HTTPS redirect is sent.
//   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-https-viewers-to-cloudfront.html
// - One cache for the whole "distribution" (no per-POP caches, no eviction), no compression (`compress: true`),
//   no conditional requests (If-None-Match → 304), no range requests.
//   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/HowCloudFrontWorks.html
// - Error responses are not cached (CloudFront keeps 4xx/5xx for 10 s by default), so a fixed or injected
//   origin error shows at once. https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/HTTPStatusCodes.html
// - S3 bucket policies and public access blocks are not enforced by s3rver; the edge signs every read anyway,
//   standing in for Origin Access Control.
//   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html
import type { S3Client } from "@aws-sdk/client-s3";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { statSync } from "node:fs";
import type { Slot } from "../../infra/config";
import {
  compileCloudFrontFunction,
  cookiesFromHeader,
  headersFromNode,
  headersToNode,
  isResponse,
  newRequestId,
  querystringFromSearch,
  setCookieHeaders,
  viewerRequestEvent,
  viewerResponseEvent,
  type CloudFrontFunction,
  type CloudFrontResponse,
  type FieldMap,
  type ViewerRequestInput,
} from "./cloudfrontRuntime";
import { LOCAL_HOST_SUFFIX } from "./engine";
import { slotFaultProblem, type FaultStore } from "./faults";
import { StackFiles, stackNameProblem, type AppliedState } from "./state";

export interface EdgeOptions {
  stateDir: string;
  s3: S3Client;
  faults: FaultStore;
  /** 0 (default) picks a free port. */
  port?: number;
}

export interface Edge {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Admin endpoints live under this prefix (loopback only): POST /_bluegreen/faults, GET /_bluegreen/health. */
const ADMIN_PREFIX = "/_bluegreen/";

/** An origin response as cached: status, headers in CloudFront's shape, body. */
interface OriginResponse {
  statusCode: number;
  statusDescription: string;
  headers: FieldMap;
  body: Buffer;
}

interface CacheEntry {
  response: OriginResponse;
  storedAt: number;
  expiresAt: number;
}

/** What the edge serves for one stack, rebuilt whenever applied.json is replaced. */
class Site {
  private key = "";
  applied: AppliedState | undefined;
  viewerRequest: CloudFrontFunction | undefined;
  viewerResponse: CloudFrontFunction | undefined;
  readonly cache = new Map<string, CacheEntry>();

  constructor(
    private readonly files: StackFiles,
    private readonly frozen: () => boolean,
  ) {}

  /** Cheap when nothing changed: one stat (a foreground `local up` and a CLI process share the folder). */
  refresh(): void {
    if (this.files.hasPending()) this.files.readApplied();
    const stat = statSync(this.files.appliedFile, { throwIfNoEntry: false });
    const key = stat === undefined ? "none" : `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
    if (key === this.key) return;
    // Asked only when there is something new to serve, so the request path stays at one stat.
    if (this.applied !== undefined && this.frozen()) return;
    this.key = key;
    this.applied = this.files.readApplied();
    const applied = this.applied;
    if (applied === undefined) return;
    const kvs = (key: string) => (Object.hasOwn(applied.kvs, key) ? applied.kvs[key] : undefined);
    this.viewerRequest = applied.functions.viewerRequest === undefined ? undefined : compileCloudFrontFunction(applied.functions.viewerRequest, { kvs: () => kvs, filename: "viewer-request.js" });
    this.viewerResponse = applied.functions.viewerResponse === undefined ? undefined : compileCloudFrontFunction(applied.functions.viewerResponse, { filename: "viewer-response.js" });
  }
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const sites = new Map<string, Site>();
  const site = (stack: string): Site => {
    let s = sites.get(stack);
    if (s === undefined) sites.set(stack, (s = new Site(new StackFiles(opts.stateDir, stack), () => opts.faults.edgeFrozen(stack))));
    s.refresh();
    return s;
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // A function that throws or returns garbage makes CloudFront answer 503; so does this edge.
      // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-503-service-unavailable.html
      if (!res.headersSent) sendText(res, 503, `local edge: ${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://edge.invalid");
    if (url.pathname.startsWith(ADMIN_PREFIX)) return admin(req, res, url);
    const host = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
    const stack = host.endsWith(LOCAL_HOST_SUFFIX) ? host.slice(0, -LOCAL_HOST_SUFFIX.length) : "";
    if (stackNameProblem(stack) !== undefined) {
      return sendText(res, 421, `local edge: Host ${JSON.stringify(host)} is not served here; use <stack>${LOCAL_HOST_SUFFIX} (stack: ${stackNameProblem(stack)})\n`);
    }
    // An injected transport failure: the connection ends with no response (the client sees a reset).
    const drop = opts.faults.dropRate(stack);
    if (drop > 0 && Math.random() < drop) {
      req.socket.destroy();
      return;
    }
    const s = site(stack);
    const applied = s.applied;
    if (applied === undefined) return sendText(res, 404, `local edge: stack ${stack} has no deployment yet; run up first\n`);
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      // The behaviour allows OPTIONS too, but S3 answers a preflight only with a CORS configuration, which the
      // program does not declare; other methods get CloudFront's 403 for methods the behaviour does not allow.
      // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/DownloadDistValuesCacheBehavior.html#DownloadDistValuesAllowedHTTPMethods
      return sendText(res, 403, `local edge: method ${method} is not allowed\n`);
    }

    const viewer: ViewerRequestInput & { requestId: string } = {
      method,
      uri: url.pathname,
      querystring: querystringFromSearch(url.search),
      headers: headersFromNode(req.headers),
      cookies: cookiesFromHeader(req.headers.cookie),
      requestId: newRequestId(),
      ip: req.socket.remoteAddress ?? "127.0.0.1",
      distributionDomainName: host,
      distributionId: String(applied.outputs.distributionId ?? "ELOCAL"),
    };
    let request = viewerRequestEvent(viewer).request;
    let originId = applied.targetOriginId;
    if (s.viewerRequest !== undefined) {
      const result = await s.viewerRequest.run(viewerRequestEvent(viewer));
      if (isResponse(result.output)) {
        // A function-generated response goes straight back, uncached, with the cookies it carries. Assumed here: the
        // viewer-response function does not run for it (the docs are silent for CloudFront Functions; the router's 503
        // carries nothing it renames, and its entry-point redirect sets the bucket cookie viewer-response would set).
        // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/function-code-choose-purpose.html
        return send(res, method, applied, viewer, functionResponse(result.output), "FunctionGeneratedResponse from cloudfront", setCookieHeaders(result.output.cookies ?? {}));
      }
      request = result.output;
      originId = result.originId ?? originId;
    }
    const bucket = applied.origins[originId];
    if (bucket === undefined) return sendText(res, 502, `local edge: origin ${JSON.stringify(originId)} does not exist on this distribution\n`);

    // Faults model a bad release in the slot, so they apply to every request routed to it, cache hits included:
    // with a cache in front, origin-only faults would mostly vanish and a broken release would look healthy.
    const fault = opts.faults.slotFault(stack, originId as Slot);
    if (fault !== undefined && fault.latencyMs > 0) await new Promise((r) => setTimeout(r, fault.latencyMs));
    if (fault !== undefined && fault.errorRate > 0 && Math.random() < fault.errorRate) {
      const injected: OriginResponse = { statusCode: 503, statusDescription: "Service Unavailable", headers: { "content-type": { value: "text/plain" } }, body: Buffer.from(`injected fault on slot ${originId}\n`) };
      return send(res, method, applied, viewer, injected, "Error from cloudfront");
    }

    // The cache key is the URI after the viewer-request rewrite and nothing else: the cache policy includes no
    // headers, cookies or query strings. https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/controlling-the-cache-key.html
    const cacheKey = request.uri;
    const now = Date.now();
    let entry = s.cache.get(cacheKey);
    let xCache = "Hit from cloudfront";
    if (entry === undefined || entry.expiresAt <= now) {
      xCache = "Miss from cloudfront";
      const response = await fetchOrigin(opts.s3, bucket, request.uri);
      const ttl = response.statusCode === 200 ? cacheTtl(response.headers["cache-control"]?.value, applied.ttl) : 0;
      entry = { response, storedAt: now, expiresAt: now + ttl * 1000 };
      if (ttl > 0) s.cache.set(cacheKey, entry);
      else s.cache.delete(cacheKey);
    }
    let response = entry.response;
    const extra: FieldMap = xCache.startsWith("Hit") ? { age: { value: String(Math.floor((now - entry.storedAt) / 1000)) } } : {};
    let cookies: Record<string, { value: string; attributes?: string }> = {};
    // Viewer-response functions run on cache hits too, but not when the origin answered 400 or above.
    // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html
    if (s.viewerResponse !== undefined && response.statusCode < 400) {
      const result = await s.viewerResponse.run(viewerResponseEvent(viewer, { statusCode: response.statusCode, statusDescription: response.statusDescription, headers: { ...response.headers, ...extra } }));
      const out = result.output as CloudFrontResponse;
      response = { statusCode: out.statusCode, statusDescription: out.statusDescription ?? response.statusDescription, headers: out.headers, body: response.body };
      cookies = out.cookies ?? {};
    } else {
      response = { ...response, headers: { ...response.headers, ...extra } };
    }
    return send(res, method, applied, viewer, response, xCache, setCookieHeaders(cookies));
  }

  async function admin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const remote = req.socket.remoteAddress ?? "";
    if (!["127.0.0.1", "::1", "::ffff:127.0.0.1"].includes(remote)) return sendText(res, 403, "local edge: admin endpoints answer loopback clients only\n");
    if (url.pathname === `${ADMIN_PREFIX}health` && req.method === "GET") return sendJson(res, 200, { ok: true, pid: process.pid });
    if (url.pathname === `${ADMIN_PREFIX}faults` && req.method === "POST") {
      const body = await readBody(req);
      let input: { stack?: unknown; slot?: unknown; errorRate?: unknown; latencyMs?: unknown; clear?: unknown };
      try {
        input = JSON.parse(body) as typeof input;
      } catch {
        return sendJson(res, 400, { error: "body: expected JSON { stack, slot, errorRate, latencyMs } or { stack, clear: true }" });
      }
      const stack = String(input.stack ?? "local");
      if (stackNameProblem(stack) !== undefined) return sendJson(res, 400, { error: `stack = ${JSON.stringify(stack)}: expected ${stackNameProblem(stack)}` });
      if (input.clear === true) {
        opts.faults.clear(stack);
        return sendJson(res, 200, { stack, cleared: true });
      }
      const fault = { errorRate: Number(input.errorRate ?? 0), latencyMs: Number(input.latencyMs ?? 0) };
      const problem = slotFaultProblem(String(input.slot), fault);
      if (problem !== undefined) return sendJson(res, 400, { error: problem });
      opts.faults.setSlotFault(stack, input.slot as Slot, fault);
      return sendJson(res, 200, { stack, slot: input.slot, ...fault });
    }
    return sendJson(res, 404, { error: `no admin endpoint ${req.method} ${url.pathname}` });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** GET from the slot's bucket; the rewritten URI (without its leading "/") is the object key. */
async function fetchOrigin(s3: S3Client, bucket: string, uri: string): Promise<OriginResponse> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: decodeURIComponent(uri.slice(1)) }));
    const headers: FieldMap = {};
    const put = (name: string, value: string | undefined) => {
      if (value !== undefined) headers[name] = { value };
    };
    put("content-type", object.ContentType);
    put("cache-control", object.CacheControl);
    put("etag", object.ETag);
    put("last-modified", object.LastModified?.toUTCString());
    for (const [k, v] of Object.entries(object.Metadata ?? {})) put(`x-amz-meta-${k.toLowerCase()}`, v);
    const body = Buffer.from(await object.Body!.transformToByteArray());
    return { statusCode: 200, statusDescription: "OK", headers, body };
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || status === 403) {
      // Through OAC the bucket policy grants s3:GetObject only, without s3:ListBucket, so AWS S3 answers a
      // missing key with 403 AccessDenied, not 404; s3rver says 404, and the edge reports what AWS would.
      // https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax (Permissions)
      return { statusCode: 403, statusDescription: "Forbidden", headers: { "content-type": { value: "application/xml" } }, body: Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>') };
    }
    return { statusCode: 502, statusDescription: "Bad Gateway", headers: { "content-type": { value: "text/plain" } }, body: Buffer.from(`local edge: origin bucket ${bucket} unreachable: ${(err as Error).message}\n`) };
  }
}

/**
 * Seconds to keep an origin response, from its Cache-Control and the cache policy's TTLs: max-age (s-maxage
 * first) clamped to [min, max]; no-store/no-cache/private mean the minimum TTL; no header means the default TTL.
 * `immutable` does not change CloudFront's TTL. https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/Expiration.html
 */
function cacheTtl(cacheControl: string | undefined, ttl: AppliedState["ttl"]): number {
  if (cacheControl === undefined) return ttl.default;
  const directives = cacheControl.toLowerCase().split(",").map((d) => d.trim());
  if (directives.some((d) => d === "no-store" || d === "no-cache" || d === "private")) return ttl.min;
  const age = directives.find((d) => d.startsWith("s-maxage=")) ?? directives.find((d) => d.startsWith("max-age="));
  if (age === undefined) return ttl.default;
  const seconds = Number(age.slice(age.indexOf("=") + 1));
  return Number.isFinite(seconds) ? Math.min(Math.max(seconds, ttl.min), ttl.max) : ttl.default;
}

function functionResponse(output: CloudFrontResponse): OriginResponse {
  const body = output.body === undefined ? "" : typeof output.body === "string" ? output.body : output.body.data;
  const encoding = typeof output.body === "object" && output.body.encoding === "base64" ? "base64" : "utf8";
  return { statusCode: output.statusCode, statusDescription: output.statusDescription ?? "", headers: output.headers ?? {}, body: Buffer.from(body, encoding) };
}

function send(res: ServerResponse, method: string, applied: AppliedState, viewer: ViewerRequestInput & { requestId: string }, response: OriginResponse, xCache: string, setCookie: string[] = []): void {
  const headers = headersToNode(response.headers);
  // The response headers policy is applied to every response the edge sends, errors included (an assumption
  // where the AWS page is silent). https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/understanding-response-headers-policies.html
  for (const [name, { value, override }] of Object.entries(applied.responseHeaders)) {
    if (override || headers[name] === undefined) headers[name] = value;
  }
  // CORS: a request with an Origin header gets Access-Control-Allow-Origin when its origin is allowed ("*" allows any
  // and is sent as "*"). Preflights (OPTIONS) are not emulated: the edge answers only GET and HEAD.
  const origin = viewer.headers?.origin?.value;
  const cors = applied.cors;
  if (cors !== undefined && origin !== undefined && (cors.override || headers["access-control-allow-origin"] === undefined)) {
    if (cors.origins.includes("*")) headers["access-control-allow-origin"] = "*";
    else if (cors.origins.includes(origin)) headers["access-control-allow-origin"] = origin;
  }
  headers["x-cache"] = xCache;
  headers["x-amz-cf-id"] = viewer.requestId;
  headers["x-amz-cf-pop"] = "LOCAL";
  headers["content-length"] = String(response.body.length);
  if (setCookie.length > 0) headers["set-cookie"] = setCookie;
  res.writeHead(response.statusCode, response.statusDescription || undefined, headers);
  res.end(method === "HEAD" ? undefined : response.body);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body) + "\n");
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
      if (body.length > 65_536) req.destroy(new Error("admin request body too large"));
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}
