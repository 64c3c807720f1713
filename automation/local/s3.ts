// The local cloud's S3: s3rver on loopback behind a pass-through HTTP front that adds S3's conditional writes,
// reached only through @aws-sdk/client-s3, the same code path as AWS.
import { S3Client } from "@aws-sdk/client-s3";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";

const LOCAL_REGION = "us-east-1";
const LOOPBACK = "127.0.0.1";

// s3rver's one built-in key pair; the buckets are private, as with OAC on AWS, so every read is signed.
const LOCAL_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export interface LocalS3 {
  /** http://127.0.0.1:PORT (the conditional-write front; s3rver itself listens on another loopback port) */
  readonly endpoint: string;
  close(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1 behind its front (`port` 0 picks a free port), keeping its objects under `directory`. */
export async function startS3(opts: { directory: string; port?: number }): Promise<LocalS3> {
  mkdirSync(opts.directory, { recursive: true });
  // Loaded on first use: commands that refuse bad input, or join a running cloud, never start an S3 server.
  const { default: S3rver } = await import("s3rver");
  // vhostBuckets off: the SDK uses path-style URLs against a loopback IP, which has no bucket subdomains.
  const server = new S3rver({ address: LOOPBACK, port: 0, silent: true, directory: opts.directory, vhostBuckets: false });
  const backend = await server.run();
  let front: ConditionalWriteFront;
  try {
    front = await startConditionalWriteFront(backend.port, opts.port ?? 0);
  } catch (err) {
    await server.close();
    throw err;
  }
  return {
    endpoint: `http://${LOOPBACK}:${front.port}`,
    close: async () => {
      await front.close();
      await server.close();
    },
  };
}

/** An S3 client for the local S3 at `endpoint`. */
export function localS3Client(endpoint: string): S3Client {
  // The SDK warns on Node 20 about a future support cut-off; this is the documented switch
  // (https://github.com/aws/aws-sdk-js-v3/issues/7983). It would only add noise to local runs.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  return new S3Client({ endpoint, region: LOCAL_REGION, forcePathStyle: true, credentials: LOCAL_CREDENTIALS });
}

/*
 * Conditional writes. s3rver 3.7 ignores If-None-Match and If-Match on PUT, so a create-if-absent or a
 * compare-and-swap would silently overwrite. The front enforces them as S3 documents:
 * - If-None-Match: * writes only if the key has no object, otherwise 412 PreconditionFailed;
 *   If-Match: <ETag> writes only if the object's ETag matches, otherwise 412 PreconditionFailed;
 *   a conflicting conditional write in flight on the same key answers 409 ConditionalRequestConflict.
 *   https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
 *   https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html (If-Match, If-None-Match)
 * - They apply to PutObject, CopyObject (the destination) and CompleteMultipartUpload.
 *   https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html
 * - Errors are S3's REST error body: <Error><Code/><Message/>…<RequestId/><HostId/></Error>, application/xml.
 *   https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
 * Every other request (and every write without those headers) is piped through unchanged, signature included.
 *
 * Where this departs from AWS: the check is a HEAD to s3rver followed by the forwarded write, and only conditional
 * writes are kept apart per key. An unconditional PUT or a DELETE that lands between the two is not seen, and S3's
 * "first write to finish wins" among concurrent creates becomes "first to arrive wins, the others get 409".
 * Versioning is not emulated (s3rver has none), so "the current version" is simply the object.
 *
 * Atomic writes. "Amazon S3 never adds partial objects": a GET sees the object before a PUT or after it
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel). s3rver writes an object by
 * truncating its file and streaming into it (lib/stores/filesystem.js `putObject`), so a GET landing mid-write reads
 * an empty or partial body: a lease read while its holder renews it would not parse. The front therefore keeps reads
 * and writes of one key apart: a read waits for the writes in flight on its key, a write for the reads. And a write
 * goes to s3rver only once its whole body has arrived: a PUT whose client was killed half way (SIGKILL while renewing
 * the lease) would otherwise leave s3rver's file truncated, where S3 keeps the object it had.
 */

interface ConditionalWriteFront {
  readonly port: number;
  close(): Promise<void>;
}

interface ConditionalWrite {
  /** `/bucket/key` as the client encoded it: the unit S3 serializes conditional writes on. */
  readonly target: string;
  readonly ifMatch?: string;
  readonly ifNoneMatch?: string;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, not to the request; none is part of a SigV4
// signature, so dropping them keeps the forwarded request's signature valid. `expect` is answered by this server.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "expect"]);

async function startConditionalWriteFront(backendPort: number, port: number): Promise<ConditionalWriteFront> {
  // Kept-alive connections to s3rver: the front must add no connection setup per request (1,000-file uploads).
  const agent = new http.Agent({ keepAlive: true });
  const inFlight = new Set<string>();

  const keys = new KeyGate();

  const server = http.createServer((req, res) => {
    const access = objectAccess(req);
    if (access === undefined) {
      forward(req, res, backendPort, agent);
      return;
    }
    // A conditional write is in flight from its first byte to its answer: a second one on the key meanwhile gets 409.
    const write = conditionalWrite(req);
    if (write !== undefined) {
      if (inFlight.has(write.target)) {
        req.resume();
        sendS3Error(res, 409, "ConditionalRequestConflict", "A conflicting conditional operation is currently in progress against this resource. Please try again.");
        return;
      }
      inFlight.add(write.target);
      res.on("close", () => inFlight.delete(write.target));
    }
    // A write reaches s3rver only once its whole body has arrived: a client killed mid-PUT leaves the object as it was.
    const body = access.kind === "write" ? wholeBody(req) : Promise.resolve(undefined);
    void body.then((whole) => {
      if (access.kind === "write" && whole === undefined) return;
      // Taken now, let go when the answer is done: the request waits for the other kind in flight on its key.
      const entered = keys.enter(access.target, access.kind);
      res.on("close", () => keys.leave(access.target));
      entered.then(() => handle(req, res, write, whole), (err: unknown) => sendS3Error(res, 500, "InternalError", (err as Error).message));
    });
  });

  /** Forwards an object's read or write, a conditional write once its precondition holds against the current ETag. */
  const handle = (req: http.IncomingMessage, res: http.ServerResponse, write: ConditionalWrite | undefined, body?: Buffer) => {
    if (write === undefined) {
      forward(req, res, backendPort, agent, body);
      return;
    }
    currentETag(write.target, backendPort, agent).then(
      (etag) => {
        const failed = failedPrecondition(write, etag);
        if (failed === undefined) {
          forward(req, res, backendPort, agent, body);
          return;
        }
        req.resume();
        if (failed === "NoSuchKey") sendS3Error(res, 404, "NoSuchKey", "The specified key does not exist.");
        else sendS3Error(res, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", { Condition: failed });
      },
      (err: unknown) => {
        req.resume();
        sendS3Error(res, 500, "InternalError", `local S3 front: reading the current ETag of ${write.target} failed: ${(err as Error).message}`);
      },
    );
  };

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, LOOPBACK, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // The SDK keeps connections alive; close() alone would wait for them to idle out.
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

/** Readers or writers of one key at a time (any number of either kind, never both): a readers-writer gate per key. */
class KeyGate {
  private readonly keys = new Map<string, { kind: Access; count: number; queue: { kind: Access; admit: () => void }[] }>();

  enter(target: string, kind: Access): Promise<void> {
    const key = this.keys.get(target);
    if (key === undefined) {
      this.keys.set(target, { kind, count: 1, queue: [] });
      return Promise.resolve();
    }
    if (key.kind === kind && key.queue.length === 0) {
      key.count++;
      return Promise.resolve();
    }
    return new Promise((admit) => key.queue.push({ kind, admit }));
  }

  leave(target: string): void {
    const key = this.keys.get(target);
    if (key === undefined || --key.count > 0) return;
    if (key.queue.length === 0) {
      this.keys.delete(target);
      return;
    }
    // The first waiter's kind takes the key, with the waiters of that kind up to the next one of the other kind.
    key.kind = key.queue[0].kind;
    while (key.queue.length > 0 && key.queue[0].kind === key.kind) {
      key.count++;
      key.queue.shift()!.admit();
    }
  }
}

type Access = "read" | "write";

/**
 * The object `req` reads (GET, HEAD) or writes (PUT, a multipart upload's completion), as `/bucket/key` (path-style,
 * the key non-empty); undefined for anything else. The SDK adds `x-id=<Operation>`; any other query names a
 * subresource (tagging, acl, partNumber…), not the object.
 */
function objectAccess(req: http.IncomingMessage): { target: string; kind: Access } | undefined {
  const url = req.url ?? "/";
  const queryAt = url.indexOf("?");
  const target = queryAt < 0 ? url : url.slice(0, queryAt);
  const slash = target.indexOf("/", 1);
  if (slash < 0 || slash === target.length - 1) return undefined;
  const params = [...new URLSearchParams(queryAt < 0 ? "" : url.slice(queryAt + 1)).keys()].filter((k) => k !== "x-id");
  if ((req.method === "GET" || req.method === "HEAD") && params.length === 0) return { target, kind: "read" };
  if (req.method === "PUT" && params.length === 0) return { target, kind: "write" };
  if (req.method === "POST" && params.length === 1 && params[0] === "uploadId") return { target, kind: "write" };
  return undefined;
}

/** The conditional write `req` is, if it is one; undefined for everything the front passes through untouched. */
function conditionalWrite(req: http.IncomingMessage): ConditionalWrite | undefined {
  const ifMatch = req.headers["if-match"];
  const ifNoneMatch = req.headers["if-none-match"];
  if (ifMatch === undefined && ifNoneMatch === undefined) return undefined;
  const access = objectAccess(req);
  return access?.kind === "write" ? { target: access.target, ifMatch, ifNoneMatch } : undefined;
}

/**
 * The header whose precondition fails against the object's current ETag (undefined: none), or NoSuchKey: an If-Match
 * write to a key with no object fails with 404 Not Found, not 412 (conditional-writes.html, "If-Match").
 */
function failedPrecondition(write: ConditionalWrite, etag: string | undefined): "If-Match" | "If-None-Match" | "NoSuchKey" | undefined {
  if (write.ifMatch !== undefined) {
    if (etag === undefined) return "NoSuchKey";
    if (!entityTags(write.ifMatch).some((t) => t === "*" || t === unquote(etag))) return "If-Match";
  }
  // S3 accepts only `*` here (the API reference: "Expects the '*' (asterisk) character"); an ETag list is evaluated as
  // RFC 9110 §13.1.2 would, as S3's rejection of it is not documented.
  if (write.ifNoneMatch !== undefined && etag !== undefined && entityTags(write.ifNoneMatch).some((t) => t === "*" || t === unquote(etag))) return "If-None-Match";
  return undefined;
}

function entityTags(header: string): string[] {
  return header.split(",").map((t) => unquote(t.trim().replace(/^W\//, "")));
}

function unquote(tag: string): string {
  return tag.length >= 2 && tag.startsWith('"') && tag.endsWith('"') ? tag.slice(1, -1) : tag;
}

/** The ETag of the object at `/bucket/key`, undefined when there is none. */
function currentETag(target: string, backendPort: number, agent: http.Agent): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    // Unsigned: s3rver checks signatures only on requests that carry one, and this request never leaves loopback.
    const head = http.request({ host: LOOPBACK, port: backendPort, method: "HEAD", path: target, agent }, (res) => {
      res.resume();
      if (res.statusCode === 404) resolve(undefined);
      else if (res.statusCode === 200 && typeof res.headers.etag === "string") resolve(res.headers.etag);
      else reject(new Error(`HEAD answered ${res.statusCode}`));
    });
    head.on("error", reject);
    head.end();
  });
}

/** The request's whole body, or undefined when the client went away before sending all of it. */
function wholeBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", () => resolve(undefined));
    req.on("close", () => {
      if (!req.complete) resolve(undefined);
    });
  });
}

/** Pipes `req` (or its `body`, already read in full) to s3rver and its answer back, headers unchanged but for hop-by-hop ones. */
function forward(req: http.IncomingMessage, res: http.ServerResponse, backendPort: number, agent: http.Agent, body?: Buffer): void {
  const headers = endToEnd(req.headers);
  // A body sent chunked arrives whole here: say its length (not a signed header unless the client sent it, then equal).
  if (body !== undefined) headers["content-length"] = body.length;
  const upstream = http.request({ host: LOOPBACK, port: backendPort, method: req.method, path: req.url, headers, agent }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
    answer.pipe(res);
  });
  upstream.on("error", (err) => {
    if (res.headersSent) res.destroy(err);
    else sendS3Error(res, 502, "InternalError", `local S3 front: s3rver did not answer: ${err.message}`);
  });
  // A client that gives up mid-request must not leave a half-written request open against s3rver.
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  if (body !== undefined) upstream.end(body);
  else req.pipe(upstream);
}

function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

function sendS3Error(res: http.ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  const requestId = randomBytes(8).toString("hex").toUpperCase();
  const fields = Object.entries(extra)
    .map(([name, value]) => `<${name}>${escapeXml(value)}</${name}>`)
    .join("");
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${escapeXml(message)}</Message>${fields}<RequestId>${requestId}</RequestId><HostId>${requestId}</HostId></Error>`;
  res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body), "x-amz-request-id": requestId });
  res.end(body);
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c] as string);
}
