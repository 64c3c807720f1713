// A CloudFront Functions runtime (cloudfront-js-2.0) for the local cloud: runs the exact router files the
// program deploys, with the `cloudfront` and `crypto` modules and the event shape CloudFront uses.
//   Runtime 2.0: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-javascript-runtime-20.html
//   Event shape: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
//   KVS helpers: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-custom-methods.html
//   Origin helpers: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/helper-functions-origin-modification.html
// Departures from CloudFront, on purpose:
// - The code runs in Node's V8 (a vm context without Node globals), not CloudFront's own engine, so a language
//   feature V8 has and CloudFront lacks is not caught here; keep router code to the features the runtime page lists.
// - No compute-utilization or memory limit is enforced (CloudFront fails functions that exceed them:
//   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-functions).
import { createHash, createHmac, randomBytes } from "node:crypto";
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import * as vm from "node:vm";
import { MAX_FUNCTION_CODE_BYTES } from "../../infra/routerCode";

/** A query-string parameter, header or request cookie: `{ value, multiValue? }` (lower-case header names). */
export interface FieldValue {
  value: string;
  /** Every value when the name occurs more than once; `value` is the first. */
  multiValue?: { value: string }[];
}
export type FieldMap = Record<string, FieldValue>;

/** A response cookie: the value plus its Set-Cookie attributes as one string. */
export interface ResponseCookie {
  value: string;
  attributes?: string;
  multiValue?: { value: string; attributes?: string }[];
}

export interface CloudFrontRequest {
  method: string;
  /** Path only, no query string. */
  uri: string;
  querystring: FieldMap;
  /** All request headers except Cookie, which CloudFront parses into `cookies`. */
  headers: FieldMap;
  cookies: FieldMap;
}

export interface CloudFrontResponse {
  statusCode: number;
  statusDescription?: string;
  /** All response headers except Set-Cookie, which CloudFront parses into `cookies`. */
  headers: FieldMap;
  cookies: Record<string, ResponseCookie>;
  /** Only on responses a viewer-request function generates. */
  body?: string | { data: string; encoding: "text" | "base64" };
}

export type EventType = "viewer-request" | "viewer-response";

export interface EventContext {
  distributionDomainName: string;
  distributionId: string;
  eventType: EventType;
  /** Identifies the request and its response; the same in both events. */
  requestId: string;
}

export interface ViewerRequestEvent {
  version: "1.0";
  context: EventContext;
  viewer: { ip: string };
  request: CloudFrontRequest;
}

export interface ViewerResponseEvent extends ViewerRequestEvent {
  response: CloudFrontResponse;
}

export type CloudFrontEvent = ViewerRequestEvent | ViewerResponseEvent;

export type KeyValueFormat = "string" | "json" | "bytes";

/**
 * The data behind `cf.kvs()`: a key's value, or undefined when the key does not exist. The runtime implements
 * `get()` over it (the three formats, the rejection for a missing key, the promise) as CloudFront's does; a lookup
 * that throws makes `get()` reject, like a failed read.
 */
export type KeyValueLookup = (key: string) => string | undefined;

/** What `cf.kvs()` returns. */
interface KeyValueStore {
  get(key: string, options?: { format?: KeyValueFormat }): Promise<unknown>;
}

export interface FunctionResult {
  /** The request to forward, or (viewer-request only) a response to answer with directly. */
  output: CloudFrontRequest | CloudFrontResponse;
  /** Set when a viewer-request function called `cf.selectRequestOriginById` and returned a request. */
  originId?: string;
  /** The argument of `cf.updateRequestOrigin`, under the same condition. */
  originUpdate?: Record<string, unknown>;
}

export interface CloudFrontFunction {
  run(event: CloudFrontEvent): Promise<FunctionResult>;
}

export interface CompileOptions {
  /** The store associated with the function; called per read so the caller can swap it. */
  kvs?: () => KeyValueLookup | undefined;
  /** Shown in stack traces. */
  filename?: string;
}

export class UnsupportedFunctionCodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedFunctionCodeError";
  }
}

const MODULE_IMPORT = /^import\s+([A-Za-z_$][\w$]*)\s+from\s+['"](cloudfront|crypto)['"];?[ \t]*$/gm;
const ANY_IMPORT_OR_EXPORT = /^\s*(import|export)\b/m;
const CLOUDFRONT_MEMBERS = new Set(["kvs", "selectRequestOriginById", "updateRequestOrigin"]);
const CRYPTO_MEMBERS = new Set(["createHash", "createHmac"]);
// The crypto module's hash and HMAC algorithms.
const HASH_ALGORITHMS = new Set(["md5", "sha1", "sha256"]);

/** One invocation's origin choice; module state in CloudFront is per invocation, here it is per run. */
interface Invocation {
  eventType: EventType;
  originId?: string;
  originUpdate?: Record<string, unknown>;
  /** Settle the promise `run` returned. */
  resolve: (result: FunctionResult) => void;
  reject: (error: unknown) => void;
}

/**
 * Compiles the function once; `run` then calls its handler directly per event.
 * Rejects code that imports or calls anything this runtime does not provide.
 */
export function compileCloudFrontFunction(code: string, options: CompileOptions = {}): CloudFrontFunction {
  const filename = options.filename ?? "cloudfront-function.js";
  const bytes = Buffer.byteLength(code, "utf8");
  if (bytes > MAX_FUNCTION_CODE_BYTES) {
    throw new UnsupportedFunctionCodeError(`${filename} is ${bytes} bytes; CloudFront Functions are limited to ${MAX_FUNCTION_CODE_BYTES}`);
  }
  const bindings: Record<string, "cloudfront" | "crypto"> = {};
  // Blank the import lines (keeping line numbers) and pass the modules in as parameters.
  const body = code.replace(MODULE_IMPORT, (_line, name: string, module: "cloudfront" | "crypto") => {
    bindings[name] = module;
    return "";
  });
  const stray = ANY_IMPORT_OR_EXPORT.exec(body);
  if (stray) throw new UnsupportedFunctionCodeError(`${filename}: only "import cf from 'cloudfront'" and "import crypto from 'crypto'" are supported; found "${stray[0].trim()}"`);
  rejectUnknownMembers(filename, body, bindings);

  // ES modules are strict; the wrapper keeps that. The context has ECMAScript built-ins plus what runtime 2.0
  // adds (Buffer, console) and none of Node's (require, process, timers), as on CloudFront.
  const context = vm.createContext({ console, Buffer });
  // The promises the code awaits and returns are the context's own. Awaiting another realm's promise fails the
  // same-constructor check of PromiseResolve (https://tc39.es/ecma262/#sec-promise-resolve) and takes the thenable
  // path instead: two more microtasks and a `then` lookup per crossing, 0.2 to 0.4 µs per invocation (bench/README.md).
  const ContextPromise = vm.runInContext("Promise", context) as PromiseConstructor;
  // A "json" read builds its objects in the function's realm too, as CloudFront's one realm does.
  const ContextJSON = vm.runInContext("JSON", context) as JSON;

  let current: Invocation | undefined;
  const store: KeyValueStore = {
    get(key, getOptions) {
      try {
        const lookup = options.kvs?.();
        if (lookup === undefined) throw new Error("key value store: no store is associated with this function");
        return ContextPromise.resolve(decode(key, lookup(key), getOptions?.format ?? "string", ContextJSON));
      } catch (error) {
        return ContextPromise.reject(error);
      }
    },
  };
  const cloudfront = {
    kvs(): KeyValueStore {
      if (options.kvs?.() === undefined) throw new Error("cf.kvs(): no key value store is associated with this function");
      return store;
    },
    selectRequestOriginById(originId: string): void {
      originInvocation("selectRequestOriginById").originId = String(originId);
    },
    updateRequestOrigin(params: Record<string, unknown>): void {
      originInvocation("updateRequestOrigin").originUpdate = params;
    },
  };
  function originInvocation(method: string): Invocation {
    // Origin modification is a viewer-request feature only.
    if (current === undefined || current.eventType !== "viewer-request") throw new Error(`cf.${method}() is only available in viewer-request functions`);
    return current;
  }
  const crypto = {
    createHash: (algorithm: string) => createHash(checkedAlgorithm(algorithm)),
    createHmac: (algorithm: string, key: string | Buffer) => createHmac(checkedAlgorithm(algorithm), key),
  };

  const names = Object.keys(bindings);
  const modules = names.map((name) => (bindings[name] === "cloudfront" ? cloudfront : crypto));
  // Node routes every global lookup in a vm context through a C++ interceptor (about 0.2 µs each, measured), a cost
  // CloudFront's runtime does not have. So the context's own built-ins (Number, String, JSON, ...) reach the code as
  // parameters of an outer function: the same objects, looked up like locals. eval stays global (a parameter named
  // eval would turn direct eval into indirect eval).
  const builtins = (vm.runInContext("Object.getOwnPropertyNames(globalThis)", context) as string[]).filter(
    (name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== "eval" && name !== "undefined" && name !== "NaN" && name !== "Infinity",
  );
  const wrapped =
    `(function (${builtins.join(", ")}) { return function (${names.join(", ")}) { "use strict"; ${body}\n; ` +
    `return typeof handler === "function" ? handler : undefined; }; })(${builtins.map((name) => `globalThis.${name}`).join(", ")})`;
  const factory = new vm.Script(wrapped, { filename }).runInContext(context) as (...m: unknown[]) => ((event: CloudFrontEvent) => unknown) | undefined;
  const maybeHandler = factory(...modules);
  if (maybeHandler === undefined) throw new UnsupportedFunctionCodeError(`${filename}: no top-level function named handler`);
  const handler = maybeHandler;

  // Invocations run one after another: origin selection is per-invocation state, and an await inside the
  // handler would otherwise let another invocation's selection land on this one. A run waits for the last one
  // started; when nothing is in flight (the common case: a benchmark, a sequential test) it starts at once.
  let inFlight = 0;
  let last: Promise<unknown> = Promise.resolve();
  // One invocation runs at a time, so `current` is the one in flight and these callbacks need no per-call closure.
  function settle(): Invocation {
    const invocation = current as Invocation;
    current = undefined;
    inFlight--;
    return invocation;
  }
  const fulfilled = (output: unknown): void => {
    const invocation = settle();
    let value: FunctionResult;
    try {
      value = result(filename, invocation.eventType, output, invocation);
    } catch (error) {
      invocation.reject(error);
      return;
    }
    invocation.resolve(value);
  };
  const rejected = (error: unknown): void => settle().reject(error);
  // `run` hands back a promise of the caller's realm, settled directly from the handler's: returning the context's
  // promise would make every caller's await cross realms, the thenable path again. The executor is created once and
  // passes each new promise's resolving functions through these two variables.
  let resolveRun: Invocation["resolve"] = () => {};
  let rejectRun: Invocation["reject"] = () => {};
  const capture = (resolve: Invocation["resolve"], reject: Invocation["reject"]): void => {
    resolveRun = resolve;
    rejectRun = reject;
  };
  function invoke(event: CloudFrontEvent): Promise<FunctionResult> {
    const run = new Promise<FunctionResult>(capture);
    current = { eventType: event.context.eventType, resolve: resolveRun, reject: rejectRun };
    try {
      // A no-op for the promise an async handler returns; wraps a synchronous handler's result. Neither callback
      // throws; a handler that throws, or returns a thenable whose `then` throws, settles the run here.
      void ContextPromise.resolve(handler(event)).then(fulfilled, rejected);
    } catch (error) {
      rejected(error);
    }
    return run;
  }
  function queue(event: CloudFrontEvent): Promise<FunctionResult> {
    const start = () => invoke(event);
    return last.then(start, start);
  }
  return {
    run(event) {
      const run = inFlight++ === 0 ? invoke(event) : queue(event);
      last = run;
      return run;
    },
  };
}

function rejectUnknownMembers(filename: string, body: string, bindings: Record<string, "cloudfront" | "crypto">): void {
  for (const [name, module] of Object.entries(bindings)) {
    const allowed = module === "cloudfront" ? CLOUDFRONT_MEMBERS : CRYPTO_MEMBERS;
    for (const match of body.matchAll(new RegExp(`(?<![\\w$.])${name.replace(/\$/g, "\\$")}\\s*\\.\\s*([A-Za-z_$][\\w$]*)`, "g"))) {
      if (!allowed.has(match[1])) {
        throw new UnsupportedFunctionCodeError(`${filename}: ${name}.${match[1]} is not provided by this runtime (supported: ${[...allowed].join(", ")})`);
      }
    }
  }
}

function checkedAlgorithm(algorithm: string): string {
  if (!HASH_ALGORITHMS.has(algorithm)) throw new Error(`crypto: algorithm "${algorithm}" is not supported (supported: ${[...HASH_ALGORITHMS].join(", ")})`);
  return algorithm;
}

function result(filename: string, eventType: EventType, output: unknown, invocation: Invocation): FunctionResult {
  if (isResponse(output)) {
    // A viewer-request function that answers directly sends nothing to an origin.
    return { output };
  }
  if (eventType === "viewer-request" && isRequest(output)) {
    return { output, originId: invocation.originId, originUpdate: invocation.originUpdate };
  }
  // CloudFront answers 5xx when a function returns something it cannot use.
  throw new Error(`${filename}: a ${eventType} function must return ${eventType === "viewer-request" ? "the request or a response" : "the response"}; got ${JSON.stringify(output)}`);
}

export function isResponse(output: unknown): output is CloudFrontResponse {
  return typeof output === "object" && output !== null && typeof (output as CloudFrontResponse).statusCode === "number";
}

function isRequest(output: unknown): output is CloudFrontRequest {
  return typeof output === "object" && output !== null && typeof (output as CloudFrontRequest).uri === "string";
}

function decode(key: string, value: string | undefined, format: KeyValueFormat, json: JSON): unknown {
  if (value === undefined) throw new Error(`key value store: key "${key}" does not exist`);
  switch (format) {
    case "string":
      return value;
    case "json":
      return json.parse(value);
    case "bytes":
      return Buffer.from(value, "utf8");
    default:
      throw new Error(`key value store: format "${String(format)}" is not one of string, json, bytes`);
  }
}

// ---- Events ----

/** What a viewer sent, in CloudFront shapes; the builders copy the maps so a function's edits stay in its event. */
export interface ViewerRequestInput {
  method?: string;
  uri: string;
  querystring?: FieldMap;
  headers?: FieldMap;
  cookies?: FieldMap;
  /** CloudFront's id for the request; a random one when omitted. */
  requestId?: string;
  ip?: string;
  distributionDomainName?: string;
  distributionId?: string;
}

export interface ResponseInput {
  statusCode: number;
  statusDescription?: string;
  headers?: FieldMap;
  cookies?: Record<string, ResponseCookie>;
}

/** A fresh id shaped like CloudFront's (56 URL-safe base64 characters). */
export function newRequestId(): string {
  return randomBytes(42).toString("base64url");
}

export function viewerRequestEvent(input: ViewerRequestInput): ViewerRequestEvent {
  return {
    version: "1.0",
    context: {
      distributionDomainName: input.distributionDomainName ?? "local.cloudfront.net",
      distributionId: input.distributionId ?? "ELOCAL",
      eventType: "viewer-request",
      requestId: input.requestId ?? newRequestId(),
    },
    viewer: { ip: input.ip ?? "127.0.0.1" },
    request: {
      method: input.method ?? "GET",
      uri: input.uri,
      querystring: { ...input.querystring },
      headers: { ...input.headers },
      cookies: { ...input.cookies },
    },
  };
}

/**
 * The viewer-response event: its `request` is the request as the viewer sent it (not as the viewer-request
 * function changed it), which is why this takes the viewer's input again. Pass the same `requestId`.
 */
export function viewerResponseEvent(viewer: ViewerRequestInput & { requestId: string }, response: ResponseInput): ViewerResponseEvent {
  const event = viewerRequestEvent(viewer);
  event.context.eventType = "viewer-response";
  // Property by property, not `{ ...event, response }`: with that spread, Node 20's V8 promoted about 2 MB of these
  // short-lived events at every young-generation collection, which then took 2-6 ms instead of 0.1 ms (measured with
  // --trace-gc-nvp in the router benchmark; the local edge builds one of these per response too).
  return {
    version: event.version,
    context: event.context,
    viewer: event.viewer,
    request: event.request,
    response: {
      statusCode: response.statusCode,
      statusDescription: response.statusDescription,
      headers: { ...response.headers },
      cookies: { ...response.cookies },
    },
  };
}

// ---- Node http <-> CloudFront shapes (for the local edge) ----

function field(values: string[]): FieldValue {
  return values.length > 1 ? { value: values[0], multiValue: values.map((value) => ({ value })) } : { value: values[0] };
}

function valuesOf(entry: FieldValue): string[] {
  return entry.multiValue ? entry.multiValue.map((v) => v.value) : [entry.value];
}

/** Node request or response headers to CloudFront's; Cookie and Set-Cookie go to the cookie helpers instead. */
export function headersFromNode(headers: IncomingHttpHeaders): FieldMap {
  const out: FieldMap = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || lower === "cookie" || lower === "set-cookie") continue;
    out[lower] = field(Array.isArray(value) ? value : [String(value)]);
  }
  return out;
}

export function headersToNode(headers: FieldMap): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, entry] of Object.entries(headers)) {
    const values = valuesOf(entry);
    out[name] = values.length > 1 ? values : values[0];
  }
  return out;
}

/** The Cookie request header to CloudFront's `cookies`; a name sent twice gets `multiValue`. */
export function cookiesFromHeader(cookieHeader: string | undefined): FieldMap {
  const grouped = new Map<string, string[]>();
  for (const pair of (cookieHeader ?? "").split(";")) {
    const at = pair.indexOf("=");
    const name = (at < 0 ? pair : pair.slice(0, at)).trim();
    if (name === "") continue;
    const value = at < 0 ? "" : pair.slice(at + 1).trim();
    grouped.set(name, [...(grouped.get(name) ?? []), value]);
  }
  const out: FieldMap = {};
  for (const [name, values] of grouped) out[name] = field(values);
  return out;
}

/** CloudFront's request `cookies` back to a Cookie header (undefined when there are none). */
export function cookiesToHeader(cookies: FieldMap): string | undefined {
  const pairs = Object.entries(cookies).flatMap(([name, entry]) => valuesOf(entry).map((value) => `${name}=${value}`));
  return pairs.length > 0 ? pairs.join("; ") : undefined;
}

/** Set-Cookie response headers to CloudFront's response `cookies`. */
export function responseCookiesFromSetCookie(setCookie: string[] | undefined): Record<string, ResponseCookie> {
  const grouped = new Map<string, { value: string; attributes?: string }[]>();
  for (const line of setCookie ?? []) {
    const semi = line.indexOf(";");
    const pair = semi < 0 ? line : line.slice(0, semi);
    const at = pair.indexOf("=");
    if (at < 1) continue;
    const attributes = semi < 0 ? undefined : line.slice(semi + 1).trim() || undefined;
    const name = pair.slice(0, at).trim();
    grouped.set(name, [...(grouped.get(name) ?? []), { value: pair.slice(at + 1).trim(), ...(attributes ? { attributes } : {}) }]);
  }
  const out: Record<string, ResponseCookie> = {};
  for (const [name, entries] of grouped) out[name] = entries.length > 1 ? { ...entries[0], multiValue: entries } : entries[0];
  return out;
}

/** CloudFront's response `cookies` to Set-Cookie header lines for the viewer. */
export function setCookieHeaders(cookies: Record<string, ResponseCookie>): string[] {
  return Object.entries(cookies).flatMap(([name, cookie]) =>
    (cookie.multiValue ?? [cookie]).map((c) => (c.attributes ? `${name}=${c.value}; ${c.attributes}` : `${name}=${c.value}`)),
  );
}

/**
 * A URL query string ("?a=1&b=2&b=3" or without "?") to CloudFront's `querystring`. Values stay
 * percent-encoded as sent, so forwarding them does not re-encode anything.
 */
export function querystringFromSearch(search: string): FieldMap {
  const grouped = new Map<string, string[]>();
  for (const part of search.replace(/^\?/, "").split("&")) {
    if (part === "") continue;
    const at = part.indexOf("=");
    const name = at < 0 ? part : part.slice(0, at);
    grouped.set(name, [...(grouped.get(name) ?? []), at < 0 ? "" : part.slice(at + 1)]);
  }
  const out: FieldMap = {};
  for (const [name, values] of grouped) out[name] = field(values);
  return out;
}

/** CloudFront's `querystring` back to "?a=1&b=2" ("" when empty). */
export function querystringToSearch(querystring: FieldMap): string {
  const parts = Object.entries(querystring).flatMap(([name, entry]) => valuesOf(entry).map((value) => (value === "" ? name : `${name}=${value}`)));
  return parts.length > 0 ? `?${parts.join("&")}` : "";
}
