// The emulated engine's program worker: a long-lived child process that keeps @pulumi/pulumi and @pulumi/aws loaded
// and, per run, evaluates the real infra/ program afresh under pulumi.runtime.setMocks, replying with what it declared.
// Isolation between runs: each run gets its own Pulumi runtime state (settings, config, mock monitor, stack
// resource) through the same async-local store Pulumi's automation server uses to run one inline program after
// another in one process, and a fresh evaluation of infra/ (its require.cache entries are dropped first).
// Runs are served one at a time, so an error the program throws inside an apply() (an unhandled rejection)
// belongs to the run in progress.
// Input: IPC messages { id, stackName, config } (the config holds the preview token, so not argv); output:
// { id, output: WorkerOutput }. The worker exits when its parent goes away.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { ConfigMap } from "@pulumi/pulumi/automation";
import { CONFIG_NAMESPACE } from "../../infra/config";
import { sha256Hex } from "../../infra/routing";
import type { ProgramResult } from "./program";

const INFRA_PROGRAM = path.join(__dirname, "..", "..", "infra", "index.ts");

// The account id the AWS documentation uses in its examples: every ARN here is visibly not a real one.
const ACCOUNT = "123456789012";

export interface WorkerRequest {
  id: number;
  stackName: string;
  config: ConfigMap;
}

/** One run's outcome: the result, or the program's error as it was thrown. */
export type WorkerOutput = { ok: true; result: ProgramResult } | { ok: false; error: { name: string; message: string }; declared: number };

export interface WorkerReply {
  id: number;
  output: WorkerOutput;
}

// Physical names are deterministic (the same stack and logical name give the same name on every run), so the
// engine sees no spurious replacements between runs. Real AWS auto-names append a random suffix instead
// (`origin-blue-a1b2c3d`). https://www.pulumi.com/docs/iac/concepts/resources/names/#autonaming
function physicalName(stackName: string, logicalName: string, maxLength: number): string {
  const name = `${CONFIG_NAMESPACE}-${stackName}-${logicalName}`.toLowerCase().replace(/[^a-z0-9-]+/g, "-");
  return name.slice(0, maxLength).replace(/-+$/, "");
}

function uuidOf(seed: string): string {
  const h = sha256Hex(seed);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** CloudFront-style ids: "E" and 13 upper-case alphanumerics. */
function cloudFrontIdOf(seed: string): string {
  return "E" + sha256Hex(seed).slice(0, 13).toUpperCase();
}

/** The output state AWS would report for a resource, shaped like the provider's (only the fields the program reads, plus ids). */
function mockState(args: pulumi.runtime.MockResourceArgs, stackName: string, region: string): { id: string; state: Record<string, unknown> } {
  const seed = `${stackName}/${args.type}/${args.name}`;
  const inputs = args.inputs as Record<string, unknown>;
  switch (args.type) {
    case "aws:s3/bucket:Bucket": {
      // S3 bucket names: 3-63 characters of a-z 0-9 . -  https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
      const bucket = (inputs.bucket as string | undefined) ?? physicalName(stackName, args.name, 63);
      return {
        id: bucket,
        state: { ...inputs, bucket, arn: `arn:aws:s3:::${bucket}`, region, bucketDomainName: `${bucket}.s3.amazonaws.com`, bucketRegionalDomainName: `${bucket}.s3.${region}.amazonaws.com` },
      };
    }
    case "aws:cloudfront/keyValueStore:KeyValueStore": {
      const name = physicalName(stackName, args.name, 64);
      return { id: name, state: { ...inputs, name, arn: `arn:aws:cloudfront::${ACCOUNT}:key-value-store/${uuidOf(seed)}`, etag: "ETVPDKIKX0DER" } };
    }
    case "aws:cloudfront/function:Function": {
      const name = physicalName(stackName, args.name, 64);
      return { id: name, state: { ...inputs, name, arn: `arn:aws:cloudfront::${ACCOUNT}:function/${name}`, status: "DEPLOYED", etag: "ETVPDKIKX0DER" } };
    }
    case "aws:cloudfront/distribution:Distribution": {
      const id = cloudFrontIdOf(seed);
      return {
        id,
        state: {
          ...inputs,
          arn: `arn:aws:cloudfront::${ACCOUNT}:distribution/${id}`,
          domainName: `d${sha256Hex(seed).slice(0, 13)}.cloudfront.net`,
          // CloudFront's fixed hosted zone for alias records. https://docs.aws.amazon.com/general/latest/gr/cf_region.html
          hostedZoneId: "Z2FDTNDATAQYW2",
          status: "Deployed",
        },
      };
    }
    case "aws:cloudfront/originAccessControl:OriginAccessControl":
      return { id: cloudFrontIdOf(seed), state: { ...inputs, name: physicalName(stackName, args.name, 64) } };
    case "aws:cloudfront/cachePolicy:CachePolicy":
    case "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy":
      return { id: uuidOf(seed), state: { ...inputs, name: physicalName(stackName, args.name, 128) } };
    case "aws:cloudfront/keyvaluestoreKey:KeyvaluestoreKey":
      // The provider's import id format: "<store arn>,<key>".
      return { id: `${String(inputs.keyValueStoreArn)},${String(inputs.key)}`, state: inputs };
    default:
      // Bucket sub-resources take the bucket name as id; components and the revision guard echo their inputs.
      return { id: typeof inputs.bucket === "string" ? inputs.bucket : args.custom ? `${args.name}-id` : "", state: inputs };
  }
}

/** The engine needs plain values; secret markers are dropped here, in memory only (stdout goes to the parent alone). */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    const v = value as Record<string, unknown>;
    if (v[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig) return plain(v.value);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return value;
}

function resolved<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

// Pulumi's per-run runtime state lives in an AsyncLocalStorage store; `withLocalStorage` runs a callback (and every
// promise it starts) with a new one. It is internal to @pulumi/pulumi (runtime/state.js), which uses it for the same
// purpose in its automation server (automation/server.js, LanguageServer.run); checked at start-up.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { withLocalStorage } = require("@pulumi/pulumi/runtime/state") as { withLocalStorage?: <T>(fn: () => Promise<T>) => Promise<T> };
if (typeof withLocalStorage !== "function") throw new Error("@pulumi/pulumi/runtime/state no longer exports withLocalStorage: the program worker cannot isolate runs");

const INFRA_DIR = path.dirname(INFRA_PROGRAM) + path.sep;

/** Drops every infra/ module from the require cache, so the next require evaluates the program from its source. */
function forgetInfraModules(): void {
  for (const file of Object.keys(require.cache)) if (file.startsWith(INFRA_DIR)) delete require.cache[file];
}

// Registrations already under way still reach the mock monitor: wait for them (bounded), so `declared`
// counts every resource the program declared before it failed.
const DRAIN_MS = 5000;

/** The run in progress; a throw inside an apply() surfaces as an unhandled rejection and is its failure. */
let failCurrent: ((err: unknown) => void) | undefined;
/** Node may report one error once per promise it passed through: report each to its run once only. */
const reported = new WeakSet<object>();

function onStrayError(err: unknown): void {
  if (typeof err === "object" && err !== null) {
    if (reported.has(err)) return;
    reported.add(err);
  }
  if (failCurrent) failCurrent(err);
  // Outside any run (a late error of a failed run's leftovers) the worker's state is suspect: start over.
  else process.exit(70);
}

/** Runs the program once; `clean` is false when a failed run left registrations that did not finish. */
function run(input: WorkerRequest): Promise<{ output: WorkerOutput; clean: boolean }> {
  const { stackName, config } = input;
  const resources: ProgramResult["resources"] = [];
  return withLocalStorage!(async () => {
    const failed = new Promise<never>((_, reject) => (failCurrent = reject));
    try {
      const evaluated = (async () => {
        const region = config["aws:region"]?.value ?? "us-east-1";
        await pulumi.runtime.setMocks(
          {
            newResource(args) {
              const { id, state } = mockState(args, stackName, region);
              if (args.custom) {
                // The dynamic provider's serialized source is Pulumi plumbing, not a resource input the engine applies.
                const inputs = { ...(args.inputs as Record<string, unknown>) };
                delete inputs.__provider;
                resources.push({ type: args.type, name: args.name, id, inputs: plain(inputs) as Record<string, unknown>, state: plain(state) as Record<string, unknown> });
              }
              return { id, state };
            },
            call(args) {
              throw new Error(`the program called ${args.token}, which the local engine does not emulate`);
            },
          },
          CONFIG_NAMESPACE,
          stackName,
        );
        const values = Object.fromEntries(Object.entries(config).map(([k, v]) => [k, v.value]));
        const secretKeys = Object.entries(config).filter(([, v]) => v.secret).map(([k]) => k);
        pulumi.runtime.setAllConfig(values, secretKeys);
        forgetInfraModules();
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const program = require(INFRA_PROGRAM) as Record<string, unknown>;
        const outputs = await resolved(pulumi.output(program));
        // Resources the outputs do not depend on (bucket policies) may still be registering: wait for every RPC.
        await pulumi.runtime.disconnect();
        return outputs;
      })();
      const outputs = await Promise.race([evaluated, failed]);
      return { output: { ok: true, result: { resources, outputs: plain(outputs) as Record<string, unknown> } }, clean: true };
    } catch (err) {
      const error = err instanceof Error ? { name: err.name, message: err.message } : { name: "Error", message: String(err) };
      let timer: NodeJS.Timeout | undefined;
      const clean = await Promise.race([
        pulumi.runtime.disconnect().then(() => true, () => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), DRAIN_MS))),
      ]);
      clearTimeout(timer);
      return { output: { ok: false, error, declared: resources.length }, clean };
    } finally {
      failCurrent = undefined;
    }
  });
}

process.on("unhandledRejection", onStrayError);
process.on("uncaughtException", onStrayError);
// The IPC channel carries the results; anything the program or Pulumi logs goes to stderr.
console.log = console.error;
console.info = console.error;

// One run at a time (see the top of the file).
let queue = Promise.resolve();
process.on("message", (request: WorkerRequest) => {
  queue = queue.then(async () => {
    const { output, clean } = await run(request);
    await new Promise<void>((resolve) => process.send!({ id: request.id, output } satisfies WorkerReply, () => resolve()));
    if (!clean) process.exit(0);
  });
});
// The parent went away (exited or closed the channel): nothing more will be asked.
process.on("disconnect", () => process.exit(0));
