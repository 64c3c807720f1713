// The emulated engine: an update runs the real infra/ program under Pulumi mocks (program.ts), then applies what it
// declared: buckets to the local S3, functions, KVS, origins and policies to the edge. The Pulumi CLI stand-in
// (pulumiCli.ts) calls it for `pulumi up`; the history and outputs it records have the Pulumi CLI's shapes.
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import * as os from "node:os";
// The guard's rule itself, not its Pulumi resource module: loading @pulumi/pulumi here would cost every CLI start a second.
import { revisionProblem } from "../../infra/routing";
import type { ConfigMap, UpdateSummary } from "../port";
import type { FaultStore } from "./faults";
import { runProgram, type DeclaredResource, type ProgramResult } from "./program";
import { StackFiles, type AppliedState, type StoredConfigValue, type StoredSummary, type UpdateLock } from "./state";

/** Host names the edge serves: `<stack>.bluegreen.localhost` (`.localhost` resolves to loopback, RFC 6761). */
export const LOCAL_HOST_SUFFIX = ".bluegreen.localhost";

export function stackHost(stack: string): string {
  return `${stack}${LOCAL_HOST_SUFFIX}`;
}

export interface EngineOptions {
  stateDir: string;
  s3: S3Client;
  /** The edge's loopback URL, returned as the local-only `edgeUrl` output. */
  edgeUrl: string;
  faults: FaultStore;
}

/** Another update holds the stack (the service answers 409; the stand-in prints the same text). */
export class UpdateConflictError extends Error {
  constructor(readonly holder: UpdateLock) {
    super("[409] Conflict: Another update is currently in progress.");
  }
}

export interface UpdateRequest {
  /** The config as the stack file stores it (secrets encrypted): what history records. */
  stored: Record<string, StoredConfigValue>;
  /** The same config with secrets decrypted: what the program reads. */
  config: ConfigMap;
  message: string;
  /** True once the client that asked for the update is gone (a killed `pulumi up`): the update is left open. */
  abandoned?: () => boolean;
}

export interface UpdateResult {
  summary: StoredSummary;
  /** Set when the update failed: the program's or the engine's own message. */
  error?: string;
}

export class LocalStack {
  readonly files: StackFiles;

  constructor(
    readonly name: string,
    private readonly opts: EngineOptions,
  ) {
    this.files = new StackFiles(opts.stateDir, name);
  }

  /**
   * `pulumi up`: takes the update lock, records the update in progress (no endTime), runs the program, applies it and
   * records the result. A client that went away mid-update leaves it in progress and locked, as a killed `pulumi up`
   * leaves a service-backed stack's update open until `pulumi cancel`.
   */
  async up(req: UpdateRequest): Promise<UpdateResult> {
    const history = this.files.readHistory();
    const version = (history.at(-1)?.version ?? 0) + 1;
    const startTime = new Date().toISOString();
    const held = this.files.lock({ version, pid: process.pid, host: os.hostname(), startTime });
    if (held !== undefined) throw new UpdateConflictError(held);
    const base = { version, kind: "update" as const, message: req.message, environment: { "exec.kind": "auto.local" }, config: req.stored, startTime };
    this.files.commit({ ...base, result: "in-progress" });
    let summary: StoredSummary;
    let applied: AppliedState | undefined;
    let error: string | undefined;
    try {
      if (this.opts.faults.takeUpFailure(this.name)) throw new Error(`stack ${this.name}: injected up failure (local cloud fault)`);
      const delay = this.opts.faults.upDelayMs(this.name);
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const previous = this.files.readApplied();
      const program = await runProgram({ stackName: this.name, config: req.config });
      applied = appliedState(program, version);
      // Under mocks the dynamic revision guard's check() never runs; the engine applies the same rule itself.
      const problem = revisionProblem(previous?.revision, applied.revision, this.name);
      if (problem !== undefined) throw new Error(problem);
      await this.ensureBuckets(program.resources);
      summary = { ...base, result: "succeeded", endTime: new Date().toISOString(), resourceChanges: resourceChanges(previous?.resources ?? {}, applied.resources) };
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      applied = undefined;
      summary = { ...base, result: "failed", endTime: new Date().toISOString(), resourceChanges: {} };
    }
    if (req.abandoned?.()) return { summary: { ...base, result: "in-progress" }, error: "the client went away; the update stays in progress until `pulumi cancel`" };
    this.files.commit(summary, applied);
    this.files.unlock();
    return { summary, error };
  }

  /** `pulumi cancel`: ends the update in progress as failed and releases its lock. */
  cancel(): UpdateLock | undefined {
    const holder = this.files.lockHolder();
    if (holder === undefined) return undefined;
    const open = this.files.readHistory().find((h) => h.version === holder.version && h.result === "in-progress");
    if (open !== undefined) this.files.commit({ ...open, result: "failed", endTime: new Date().toISOString(), resourceChanges: {} });
    this.files.unlock();
    return holder;
  }

  /** The outputs of the last successful update, plus the local-only `edgeUrl`. */
  outputs(): Record<string, unknown> {
    const applied = this.files.readApplied();
    // The stack's host stands in for the cloudfront.net domain; `edgeUrl` is where that host is served on loopback.
    return applied === undefined ? {} : { ...applied.outputs, distributionDomain: stackHost(this.name), edgeUrl: this.opts.edgeUrl };
  }

  private async ensureBuckets(resources: DeclaredResource[]): Promise<void> {
    for (const bucket of resources.filter((r) => r.type === BUCKET)) {
      try {
        await this.opts.s3.send(new CreateBucketCommand({ Bucket: bucket.id }));
      } catch (err) {
        const name = (err as { name?: string }).name;
        if (name !== "BucketAlreadyOwnedByYou" && name !== "BucketAlreadyExists") throw err;
      }
    }
  }
}

const BUCKET = "aws:s3/bucket:Bucket";
const DISTRIBUTION = "aws:cloudfront/distribution:Distribution";
const FUNCTION = "aws:cloudfront/function:Function";
const KVS_KEY = "aws:cloudfront/keyvaluestoreKey:KeyvaluestoreKey";
const CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy";
const HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy";
const REVISION_GUARD = "pulumi-nodejs:dynamic/picasso-widget:RevisionGuard";

type Inputs = Record<string, unknown>;

function only(resources: DeclaredResource[], type: string, match: (r: DeclaredResource) => boolean = () => true): DeclaredResource {
  const found = resources.filter((r) => r.type === type && match(r));
  if (found.length !== 1) throw new Error(`local engine: expected exactly one ${type}, the program declared ${found.length}`);
  return found[0];
}

/** Turns the declared resources into what the edge serves. */
function appliedState(program: ProgramResult, version: number): AppliedState {
  const { resources } = program;
  const distribution = only(resources, DISTRIBUTION).inputs;
  const behaviour = distribution.defaultCacheBehavior as Inputs;
  const buckets = resources.filter((r) => r.type === BUCKET);
  const origins: Record<string, string> = {};
  for (const origin of distribution.origins as Inputs[]) {
    const bucket = buckets.find((b) => String(origin.domainName).startsWith(`${b.id}.s3.`));
    if (bucket === undefined) throw new Error(`local engine: origin ${String(origin.originId)} (${String(origin.domainName)}) is not one of the program's buckets`);
    origins[String(origin.originId)] = bucket.id;
  }
  const functions: AppliedState["functions"] = {};
  let kvsArns: unknown[] = [];
  for (const association of (behaviour.functionAssociations as Inputs[] | undefined) ?? []) {
    const fn = only(resources, FUNCTION, (r) => String(association.functionArn).endsWith(`:function/${r.id}`)).inputs;
    if (association.eventType === "viewer-request") {
      functions.viewerRequest = String(fn.code);
      kvsArns = (fn.keyValueStoreAssociations as unknown[] | undefined) ?? [];
    } else if (association.eventType === "viewer-response") {
      functions.viewerResponse = String(fn.code);
    }
  }
  const kvs: Record<string, string> = {};
  for (const key of resources.filter((r) => r.type === KVS_KEY && kvsArns.includes(r.inputs.keyValueStoreArn))) kvs[String(key.inputs.key)] = String(key.inputs.value);
  const cache = only(resources, CACHE_POLICY, (r) => r.id === behaviour.cachePolicyId).inputs;
  const headersPolicy = behaviour.responseHeadersPolicyId === undefined ? undefined : only(resources, HEADERS_POLICY, (r) => r.id === behaviour.responseHeadersPolicyId).inputs;
  const guard = resources.find((r) => r.type === REVISION_GUARD);
  return {
    version,
    revision: Number(guard?.inputs.revision ?? 0),
    functions,
    kvs,
    origins,
    targetOriginId: String(behaviour.targetOriginId),
    responseHeaders: headersPolicy === undefined ? {} : policyHeaders(headersPolicy),
    cors: headersPolicy === undefined ? undefined : policyCors(headersPolicy),
    ttl: { min: Number(cache.minTtl ?? 0), default: Number(cache.defaultTtl ?? 86_400), max: Number(cache.maxTtl ?? 31_536_000) },
    outputs: program.outputs,
    resources: Object.fromEntries(resources.map((r) => [`${r.type}::${r.name}`, createHash("sha256").update(JSON.stringify(r.inputs)).digest("hex")])),
  };
}

function resourceChanges(before: Record<string, string>, after: Record<string, string>): NonNullable<UpdateSummary["resourceChanges"]> {
  const changes = { same: 0, create: 0, update: 0, delete: 0 };
  for (const [urn, hash] of Object.entries(after)) changes[before[urn] === undefined ? "create" : before[urn] === hash ? "same" : "update"]++;
  changes.delete = Object.keys(before).filter((urn) => after[urn] === undefined).length;
  return Object.fromEntries(Object.entries(changes).filter(([, n]) => n > 0));
}

/** The CORS part of a response headers policy: which request origins get Access-Control-Allow-Origin.
 * https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_ResponseHeadersPolicyCorsConfig.html */
function policyCors(policy: Inputs): AppliedState["cors"] {
  const cors = policy.corsConfig as Inputs | undefined;
  if (cors === undefined) return undefined;
  const origins = ((cors.accessControlAllowOrigins as Inputs | undefined)?.items as unknown[] | undefined) ?? [];
  return { origins: origins.map(String), override: cors.originOverride === true };
}

/** The headers a response headers policy adds, as CloudFront writes them.
 * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/understanding-response-headers-policies.html */
function policyHeaders(policy: Inputs): AppliedState["responseHeaders"] {
  const out: AppliedState["responseHeaders"] = {};
  const security = (policy.securityHeadersConfig ?? {}) as Record<string, Inputs | undefined>;
  const set = (name: string, entry: Inputs | undefined, value: (e: Inputs) => string) => {
    if (entry !== undefined) out[name] = { value: value(entry), override: entry.override === true };
  };
  set("strict-transport-security", security.strictTransportSecurity, (e) => `max-age=${Number(e.accessControlMaxAgeSec)}${e.includeSubdomains ? "; includeSubDomains" : ""}${e.preload ? "; preload" : ""}`);
  set("x-content-type-options", security.contentTypeOptions, () => "nosniff");
  set("x-frame-options", security.frameOptions, (e) => String(e.frameOption));
  set("referrer-policy", security.referrerPolicy, (e) => String(e.referrerPolicy));
  set("content-security-policy", security.contentSecurityPolicy, (e) => String(e.contentSecurityPolicy));
  set("x-xss-protection", security.xssProtection, (e) => `${e.protection ? "1" : "0"}${e.modeBlock ? "; mode=block" : ""}${e.reportUri ? `; report=${String(e.reportUri)}` : ""}`);
  for (const item of ((policy.customHeadersConfig as Inputs | undefined)?.items as Inputs[] | undefined) ?? []) {
    out[String(item.header).toLowerCase()] = { value: String(item.value), override: item.override === true };
  }
  return out;
}
