// Child-process entry of the emulated engine: runs the real infra/ program under pulumi.runtime.setMocks and
// prints one JSON document (the declared resources and the stack outputs) on stdout for program.ts.
// It runs in its own process because Pulumi keeps its runtime state (config, monitor, registrations) in
// module globals: a second run in the same process would see the first one's.
// Input: one JSON document { stackName, config } on stdin (the config holds the preview token, so not argv).
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { ConfigMap } from "@pulumi/pulumi/automation";
import { CONFIG_NAMESPACE } from "../../infra/config";
import { sha256Hex } from "../../infra/routing";
import type { ProgramResult } from "./program";

const INFRA_PROGRAM = path.join(__dirname, "..", "..", "infra", "index.ts");

// The account id the AWS documentation uses in its examples: every ARN here is visibly not a real one.
const ACCOUNT = "123456789012";

interface ChildInput {
  stackName: string;
  config: ConfigMap;
}

/** What the child prints: the result, or the program's error as it was thrown. */
export type ChildOutput = { ok: true; result: ProgramResult } | { ok: false; error: { name: string; message: string }; declared: number };

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

const resources: ProgramResult["resources"] = [];

async function run(input: ChildInput): Promise<ProgramResult> {
  const { stackName, config } = input;
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

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const program = require(INFRA_PROGRAM) as Record<string, unknown>;
  const outputs = await resolved(pulumi.output(program));
  // Resources the outputs do not depend on (bucket policies) may still be registering: wait for every RPC.
  await pulumi.runtime.disconnect();
  return { resources, outputs: plain(outputs) as Record<string, unknown> };
}

let finished = false;

function finish(output: ChildOutput): void {
  // One document only, even when a second failure arrives while the first is being written.
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(output) + "\n", () => process.exit(0));
}

// Registrations already under way still reach the mock monitor: wait for them (bounded), so `declared`
// counts every resource the program declared before it failed.
const DRAIN_MS = 5000;

function fail(err: unknown): void {
  const error = err instanceof Error ? { name: err.name, message: err.message } : { name: "Error", message: String(err) };
  const drained = Promise.race([pulumi.runtime.disconnect(), new Promise((resolve) => setTimeout(resolve, DRAIN_MS).unref())]);
  drained.catch(() => undefined).then(() => finish({ ok: false, error, declared: resources.length }));
}

// A throw inside an apply() surfaces as an unhandled rejection: it is the program's failure all the same.
process.on("unhandledRejection", fail);
process.on("uncaughtException", fail);
// stdout carries the one result document; anything the program or Pulumi logs goes to stderr.
console.log = console.error;
console.info = console.error;

let stdin = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk: string) => (stdin += chunk));
process.stdin.on("end", () => {
  run(JSON.parse(stdin) as ChildInput).then((result) => finish({ ok: true, result }), fail);
});
