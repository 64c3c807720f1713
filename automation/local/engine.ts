// The emulated engine: a DeploymentStack whose `up` runs the real infra/ program under Pulumi mocks (program.ts),
// then applies what it declared: buckets to the local S3, functions, KVS, origins and policies to the edge.
// Config and update history live in the state folder and have the automation API's shapes.
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { CONFIG_NAMESPACE } from "../../infra/config";
// The guard's rule itself, not its Pulumi resource module: loading @pulumi/pulumi here would cost every CLI start a second.
import { RESTORE_REVISION_ENV, revisionProblem } from "../../infra/routing";
import type { ConfigMap, DeploymentStack, OutputMap, UpdateSummary, UpOptions, UpResult } from "../port";
import type { FaultStore } from "./faults";
import { runProgram, type DeclaredResource, type ProgramResult } from "./program";
import { StackFiles, type AppliedState } from "./state";

/** Host names the edge serves: `<stack>.bluegreen.localhost` (`.localhost` resolves to loopback, RFC 6761). */
export const LOCAL_HOST_SUFFIX = ".bluegreen.localhost";

export function stackHost(stack: string): string {
  return `${stack}${LOCAL_HOST_SUFFIX}`;
}

export interface LocalStackOptions {
  stateDir: string;
  s3: S3Client;
  /** The edge's loopback URL, returned as the local-only `edgeUrl` output. */
  edgeUrl: string;
  faults: FaultStore;
}

export class LocalStack implements DeploymentStack {
  private readonly files: StackFiles;

  constructor(
    readonly name: string,
    private readonly opts: LocalStackOptions,
  ) {
    this.files = new StackFiles(opts.stateDir, name);
  }

  async getAllConfig(): Promise<ConfigMap> {
    return this.files.readConfig();
  }

  /** Sets the given keys, keeping the others (as `pulumi config set-all`). */
  async setAllConfig(config: ConfigMap, path?: boolean): Promise<void> {
    noPaths("setAllConfig", path);
    const next = this.files.readConfig();
    for (const [key, value] of Object.entries(config)) next[fullKey(key)] = { value: value.value, secret: value.secret ?? false };
    this.files.writeConfig(next);
  }

  async removeConfig(key: string, path?: boolean): Promise<void> {
    noPaths("removeConfig", path);
    const next = this.files.readConfig();
    delete next[fullKey(key)];
    this.files.writeConfig(next);
  }

  /**
   * `pulumi config refresh`: the config becomes the one of the most recent update, whatever its result (the
   * DIY backend reads the newest history entry); with no update yet it fails, as the CLI does.
   */
  async refreshConfig(): Promise<ConfigMap> {
    const latest = this.files.readHistory().at(-1);
    if (latest === undefined) throw new Error(`stack ${this.name}: no previous deployment to refresh the config from`);
    this.files.writeConfig(latest.config);
    return latest.config;
  }

  async up(opts: UpOptions = {}): Promise<UpResult> {
    const startTime = new Date();
    const config = this.files.readConfig();
    const version = (this.files.readHistory().at(-1)?.version ?? 0) + 1;
    const summary = (result: "succeeded" | "failed", changes?: UpdateSummary["resourceChanges"]): UpdateSummary => ({
      version,
      kind: "update",
      result,
      message: opts.message ?? "",
      environment: { "exec.kind": "bluegreen.local" },
      config,
      startTime,
      endTime: new Date(),
      ...(changes ? { resourceChanges: changes } : {}),
    });

    let applied: AppliedState;
    let changes: NonNullable<UpdateSummary["resourceChanges"]>;
    try {
      if (this.opts.faults.takeUpFailure(this.name)) throw new Error(`stack ${this.name}: injected up failure (local cloud fault)`);
      const previous = this.files.readApplied();
      const program = await runProgram({ stackName: this.name, config });
      applied = appliedState(program, version);
      // Under mocks the dynamic revision guard's check() never runs; the engine applies the same rule itself.
      const problem = revisionProblem(previous?.revision, applied.revision, this.name, process.env[RESTORE_REVISION_ENV]);
      if (problem !== undefined) throw new Error(problem);
      await this.ensureBuckets(program.resources);
      changes = resourceChanges(previous?.resources ?? {}, applied.resources);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.files.commit(summary("failed"));
      opts.onError?.(message);
      // A ProgramError keeps the program's own message and error name (ConfigError: bad stack config).
      throw err instanceof Error ? err : new Error(message);
    }
    const done = summary("succeeded", changes);
    this.files.commit(done, applied);
    const stdout = `Updating (${this.name}):\n${Object.entries(changes).map(([op, n]) => `    ${n} ${op}`).join("\n")}\nUpdate ${version} succeeded.\n`;
    opts.onOutput?.(stdout);
    return { stdout, stderr: "", summary: done, outputs: this.outputMap(applied) };
  }

  /** Newest first, paged like `pulumi stack history` (showSecrets defaults to true there too). */
  async history(pageSize?: number, page?: number, showSecrets = true): Promise<UpdateSummary[]> {
    let entries = this.files.readHistory().reverse();
    if (pageSize !== undefined && pageSize > 0) {
      const p = page !== undefined && page >= 1 ? Math.floor(page) : 1;
      entries = entries.slice((p - 1) * Math.floor(pageSize), p * Math.floor(pageSize));
    }
    if (showSecrets) return entries;
    return entries.map((e) => ({ ...e, config: Object.fromEntries(Object.entries(e.config).map(([k, v]) => [k, v.secret ? { value: "[secret]", secret: true } : v])) }));
  }

  /** The outputs of the last successful update, plus the local-only `edgeUrl`. */
  async outputs(): Promise<OutputMap> {
    const applied = this.files.readApplied();
    return applied === undefined ? {} : this.outputMap(applied);
  }

  private outputMap(applied: AppliedState): OutputMap {
    // The stack's host stands in for the cloudfront.net domain; `edgeUrl` is where that host is served on loopback.
    const outputs = { ...applied.outputs, distributionDomain: stackHost(this.name), edgeUrl: this.opts.edgeUrl };
    return Object.fromEntries(Object.entries(outputs).map(([k, value]) => [k, { value, secret: false }]));
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

// Compile-time check: the engine satisfies the driver's port (port.ts proves the same for the real Stack).
type Satisfies<T extends DeploymentStack> = T;
export type LocalStackIsADeploymentStack = Satisfies<LocalStack>;

const BUCKET = "aws:s3/bucket:Bucket";
const DISTRIBUTION = "aws:cloudfront/distribution:Distribution";
const FUNCTION = "aws:cloudfront/function:Function";
const KVS_KEY = "aws:cloudfront/keyvaluestoreKey:KeyvaluestoreKey";
const CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy";
const HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy";
const REVISION_GUARD = "pulumi-nodejs:dynamic/picasso-widget:RevisionGuard";

function noPaths(method: string, path: boolean | undefined): void {
  if (path) throw new Error(`local engine: ${method} with path=true (nested config paths) is not supported; pass whole top-level values`);
}

function fullKey(key: string): string {
  return key.includes(":") ? key : `${CONFIG_NAMESPACE}:${key}`;
}

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
