// docs/iam-policy.json is the policy of the role that runs `pulumi up` and `bluegreen`. A missing action shows up on
// AWS only, as an AccessDenied halfway through a rollout, so this test derives what the code needs from the code
// itself: every AWS SDK operation automation/ and infra/ import, and every AWS resource type infra/ declares, each
// through an explicit table. A name missing from a table fails the test, so a new call cannot slip through unmapped.
//
// Action names follow the Service Authorization Reference:
//   S3:                       https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
//   CloudFront:               https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudfront.html
//   CloudFront KeyValueStore: https://docs.aws.amazon.com/service-authorization/latest/reference/list_cloudfront-keyvaluestore.html
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { expect } from "chai";
import { parse } from "yaml";
import { runProgram, type ProgramResult } from "../../automation/local/program";
import type { ConfigMap } from "../../automation/port";

const ROOT = path.join(__dirname, "..", "..");
const POLICY_FILE = path.join(ROOT, "docs", "iam-policy.json");

// ---- The tables ----------------------------------------------------------------------------------------------

/**
 * What each value imported from an `@aws-sdk/*` package makes AWS authorize, per package. `[]`: it calls nothing
 * by itself (error classes, credential sources that sign with an identity other than this role's).
 */
const SDK_ACTIONS: Record<string, Record<string, readonly string[]>> = {
  "@aws-sdk/client-s3": {
    GetObjectCommand: ["s3:GetObject"],
    // HEAD needs s3:GetObject; s3:ListBucket decides 404 (missing) over 403 for an absent key.
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
    HeadObjectCommand: ["s3:GetObject", "s3:ListBucket"],
    PutObjectCommand: ["s3:PutObject"],
    // Multi-object delete is authorized per key as s3:DeleteObject (no s3:DeleteObjects action exists).
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
    DeleteObjectsCommand: ["s3:DeleteObject"],
    DeleteObjectCommand: ["s3:DeleteObject"],
    ListObjectsV2Command: ["s3:ListBucket"],
    paginateListObjectsV2: ["s3:ListBucket"],
    // HeadBucket is authorized as s3:ListBucket. https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
    HeadBucketCommand: ["s3:ListBucket"],
    CreateBucketCommand: ["s3:CreateBucket"],
    NoSuchKey: [],
    NotFound: [],
    S3ServiceException: [],
  },
  "@aws-sdk/client-cloudfront": {
    GetDistributionCommand: ["cloudfront:GetDistribution"],
    // The waiter polls GetDistribution until the status is Deployed.
    waitUntilDistributionDeployed: ["cloudfront:GetDistribution"],
    GetDistributionConfigCommand: ["cloudfront:GetDistributionConfig"],
    CreateInvalidationCommand: ["cloudfront:CreateInvalidation"],
    GetInvalidationCommand: ["cloudfront:GetInvalidation"],
    DescribeKeyValueStoreCommand: ["cloudfront:DescribeKeyValueStore"],
    DescribeFunctionCommand: ["cloudfront:DescribeFunction"],
    CloudFrontServiceException: [],
  },
  // The KeyValueStore data plane: its own service prefix, and requests signed with SigV4A (see README).
  "@aws-sdk/client-cloudfront-keyvaluestore": {
    DescribeKeyValueStoreCommand: ["cloudfront-keyvaluestore:DescribeKeyValueStore"],
    GetKeyCommand: ["cloudfront-keyvaluestore:GetKey"],
    ListKeysCommand: ["cloudfront-keyvaluestore:ListKeys"],
    paginateListKeys: ["cloudfront-keyvaluestore:ListKeys"],
    PutKeyCommand: ["cloudfront-keyvaluestore:PutKey"],
    DeleteKeyCommand: ["cloudfront-keyvaluestore:DeleteKey"],
    UpdateKeysCommand: ["cloudfront-keyvaluestore:UpdateKeys"],
    CloudFrontKeyValueStoreServiceException: [],
  },
  "@aws-sdk/client-sts": {
    // Needs no permission at all (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html);
    // the policy lists it anyway so that the table stays literal.
    GetCallerIdentityCommand: ["sts:GetCallerIdentity"],
    AssumeRoleCommand: ["sts:AssumeRole"],
    STSServiceException: [],
  },
  "@aws-sdk/credential-providers": {
    // This role assumes another stack's role (promote reads the source stack with the source's access).
    fromTemporaryCredentials: ["sts:AssumeRole"],
    // These sign with whatever identity the profile, environment or chain resolves to, not with this role.
    fromIni: [],
    fromEnv: [],
    fromNodeProviderChain: [],
    fromSSO: [],
    fromProcess: [],
    fromTokenFile: [],
    fromWebToken: [],
    fromContainerMetadata: [],
    fromInstanceMetadata: [],
  },
};

/**
 * What the Pulumi AWS provider calls to create, read, update and delete each resource type the program declares
 * (`new aws.<module>.<Type>(`). The provider reads a bucket's every sub-configuration on refresh, whether the program
 * sets it or not (terraform-provider-aws internal/service/s3/bucket.go, resourceBucketRead).
 */
const RESOURCE_ACTIONS: Record<string, readonly string[]> = {
  "s3.Bucket": [
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:ListBucket", // HeadBucket: does the bucket still exist
    "s3:GetBucketPolicy",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketWebsite",
    "s3:GetBucketVersioning",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketLogging",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:GetEncryptionConfiguration",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketTagging",
    "s3:PutBucketTagging",
  ],
  // Deleting the block, the ownership controls or the encryption is authorized by the Put action.
  // https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeletePublicAccessBlock.html
  "s3.BucketPublicAccessBlock": ["s3:PutBucketPublicAccessBlock", "s3:GetBucketPublicAccessBlock"],
  // https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketOwnershipControls.html
  "s3.BucketOwnershipControls": ["s3:PutBucketOwnershipControls", "s3:GetBucketOwnershipControls"],
  "s3.BucketVersioning": ["s3:PutBucketVersioning", "s3:GetBucketVersioning"],
  // https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketEncryption.html
  "s3.BucketServerSideEncryptionConfiguration": ["s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration"],
  "s3.BucketPolicy": ["s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"],
  "cloudfront.OriginAccessControl": [
    "cloudfront:CreateOriginAccessControl",
    "cloudfront:GetOriginAccessControl",
    "cloudfront:UpdateOriginAccessControl",
    "cloudfront:DeleteOriginAccessControl",
  ],
  "cloudfront.CachePolicy": ["cloudfront:CreateCachePolicy", "cloudfront:GetCachePolicy", "cloudfront:UpdateCachePolicy", "cloudfront:DeleteCachePolicy"],
  "cloudfront.ResponseHeadersPolicy": [
    "cloudfront:CreateResponseHeadersPolicy",
    "cloudfront:GetResponseHeadersPolicy",
    "cloudfront:UpdateResponseHeadersPolicy",
    "cloudfront:DeleteResponseHeadersPolicy",
  ],
  // CreateDistributionWithTags is authorized as CreateDistribution plus TagResource; a distribution is disabled
  // (UpdateDistribution) before it can be deleted.
  "cloudfront.Distribution": [
    "cloudfront:CreateDistribution",
    "cloudfront:TagResource",
    "cloudfront:UntagResource",
    "cloudfront:ListTagsForResource",
    "cloudfront:GetDistribution",
    "cloudfront:GetDistributionConfig",
    "cloudfront:UpdateDistribution",
    "cloudfront:DeleteDistribution",
  ],
  "cloudfront.Function": [
    "cloudfront:CreateFunction",
    "cloudfront:DescribeFunction",
    "cloudfront:GetFunction",
    "cloudfront:UpdateFunction",
    "cloudfront:PublishFunction",
    "cloudfront:DeleteFunction",
  ],
  "cloudfront.KeyValueStore": [
    "cloudfront:CreateKeyValueStore",
    "cloudfront:DescribeKeyValueStore",
    "cloudfront:UpdateKeyValueStore",
    "cloudfront:DeleteKeyValueStore",
  ],
  // A key is written through the data-plane API: the store's ETag (DescribeKeyValueStore), then PutKey/DeleteKey
  // with If-Match. https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_kvs_PutKey.html
  "cloudfront.KeyvaluestoreKey": [
    "cloudfront-keyvaluestore:DescribeKeyValueStore",
    "cloudfront-keyvaluestore:GetKey",
    "cloudfront-keyvaluestore:ListKeys",
    "cloudfront-keyvaluestore:PutKey",
    "cloudfront-keyvaluestore:DeleteKey",
  ],
};

/** The AWS provider checks its credentials when it starts, whatever the program declares. */
const PROVIDER_ACTIONS = ["sts:GetCallerIdentity"];

/**
 * The local cloud (s3rver and the edge stand-in) is never AWS: its S3 calls go to loopback with fixed local
 * credentials, so they make no demand on the role. Everything else under automation/ and infra/ is scanned.
 */
const NOT_AWS = [path.join("automation", "local")];

// ---- The policy ----------------------------------------------------------------------------------------------

interface Statement {
  Sid: string;
  Effect: "Allow" | "Deny";
  Action: string | string[];
  Resource: string | string[];
  Condition?: unknown;
}

interface Policy {
  Version: string;
  Statement: Statement[];
}

const list = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);

/** IAM's wildcards: `*` any run of characters, `?` one character. */
function glob(pattern: string, caseInsensitive: boolean): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`, caseInsensitive ? "i" : "");
}

/**
 * Is `action` (on `resource`, when given) allowed and not denied? Action names are case-insensitive, resources are
 * not. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
 */
function allows(policy: Policy, action: string, resource?: string): boolean {
  const matches = (s: Statement) =>
    list(s.Action).some((a) => glob(a, true).test(action)) && (resource === undefined || list(s.Resource).some((r) => glob(r, false).test(resource)));
  const unconditioned = (s: Statement) => s.Condition === undefined;
  return policy.Statement.some((s) => s.Effect === "Allow" && matches(s)) && !policy.Statement.some((s) => s.Effect === "Deny" && unconditioned(s) && matches(s));
}

/** The required actions the policy does not allow, sorted. */
function missingActions(policy: Policy, required: Iterable<string>): string[] {
  return [...new Set(required)].filter((action) => !allows(policy, action)).sort();
}

// ---- Scanning the code ---------------------------------------------------------------------------------------

interface SdkUse {
  file: string;
  pkg: string;
  name: string;
}

interface Scan<T> {
  found: T[];
  /** Imports or declarations the tables cannot account for. */
  problems: string[];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.[cm]?[jt]s$/.test(e.name) && !e.name.endsWith(".d.ts"))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)));
}

/** Names bound by an import or destructuring list: `A, B as C, type D` gives A and B (types make no calls). */
function boundNames(specifiers: string): string[] {
  return specifiers
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "" && !s.startsWith("type "))
    .map((s) => s.split(/\s+as\s+|\s*:\s*/)[0].trim());
}

/**
 * Every value the file takes from an `@aws-sdk/*` package (static and dynamic imports, require, namespace
 * members), and every `new XCommand(` whose class does not come from one: a command re-exported through a local
 * module would otherwise escape the tables.
 */
function scanSdkUses(file: string, source: string): Scan<SdkUse> {
  const found: SdkUse[] = [];
  const problems: string[] = [];
  const fromSdk = new Set<string>();
  const use = (pkg: string, name: string) => {
    fromSdk.add(name);
    found.push({ file, pkg, name });
  };
  for (const m of source.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s*from\s*["'](@aws-sdk\/[^"']+)["']/g)) {
    if (m[1] === undefined) for (const name of boundNames(m[2])) use(m[3], name);
  }
  for (const m of source.matchAll(/(?:const|let|var)\s*\{([^}]*)\}\s*=\s*(?:await\s+import|require)\(\s*["'](@aws-sdk\/[^"']+)["']\s*\)/g)) {
    for (const name of boundNames(m[1])) use(m[2], name);
  }
  for (const m of source.matchAll(/import\s+\*\s+as\s+(\w+)\s+from\s*["'](@aws-sdk\/[^"']+)["']/g)) {
    for (const member of source.matchAll(new RegExp(`\\b${m[1]}\\.(\\w+)`, "g"))) use(m[2], member[1]);
  }
  for (const m of source.matchAll(/(?:const|let|var)\s+(\w+)\s*=\s*(?:await\s+import|require)\(\s*["'](@aws-sdk\/[^"']+)["']\s*\)/g)) {
    for (const member of source.matchAll(new RegExp(`\\b${m[1]}\\.(\\w+)`, "g"))) use(m[2], member[1]);
  }
  for (const m of source.matchAll(/\bnew\s+(\w+Command)\s*\(/g)) {
    if (!fromSdk.has(m[1])) problems.push(`${file}: new ${m[1]}( is not imported from an @aws-sdk package, so its AWS action cannot be looked up`);
  }
  return { found, problems };
}

/** The IAM actions of SDK uses; names missing from SDK_ACTIONS (other than client classes) are problems. */
function sdkActions(uses: readonly SdkUse[]): Scan<string> {
  const found: string[] = [];
  const problems: string[] = [];
  for (const { file, pkg, name } of uses) {
    const actions = SDK_ACTIONS[pkg]?.[name];
    if (actions !== undefined) found.push(...actions);
    // Constructing a client calls nothing; its commands are what is sent.
    else if (!/Client$/.test(name)) problems.push(`${file}: ${name} from ${pkg} is not in SDK_ACTIONS (add the IAM actions it needs, or [] if it calls nothing)`);
  }
  return { found, problems };
}

/** `new aws.<module>.<Type>(` in a program file; `@pulumi/aws` imported under another name is a problem. */
function scanResourceTypes(file: string, source: string): Scan<string> {
  const problems: string[] = [];
  for (const m of source.matchAll(/import\s+(.+?)\s+from\s*["']@pulumi\/aws(?:\/[^"']*)?["']/g)) {
    if (!/^(type\s+)?\*\s+as\s+aws$/.test(m[1].trim())) problems.push(`${file}: imports @pulumi/aws as \`${m[1].trim()}\`; the scan reads \`import * as aws\` only`);
  }
  return { found: [...source.matchAll(/\bnew\s+aws\.(\w+)\.(\w+)\s*\(/g)].map((m) => `${m[1]}.${m[2]}`), problems };
}

/** The IAM actions of resource types; types missing from RESOURCE_ACTIONS are problems. */
function resourceActions(types: readonly string[]): Scan<string> {
  const found: string[] = [];
  const problems: string[] = [];
  for (const type of new Set(types)) {
    const actions = RESOURCE_ACTIONS[type];
    if (actions === undefined) problems.push(`aws.${type} is not in RESOURCE_ACTIONS (add what the provider calls to create, read, update and delete it)`);
    else found.push(...actions);
  }
  return { found, problems };
}

/** `aws:s3/bucket:Bucket` → `s3.Bucket`, the key the source scan uses. */
function typeKey(token: string): string | undefined {
  const m = /^aws:(\w+)\/\w+:(\w+)$/.exec(token);
  return m === null ? undefined : `${m[1]}.${m[2]}`;
}

/** The local stack file as the engine reads it (objects JSON-encoded); its preview token is a plain local value. */
function localStackConfig(): ConfigMap {
  const doc = parse(readFileSync(path.join(ROOT, "stacks", "Pulumi.local.yaml"), "utf8")) as { config: Record<string, unknown> };
  return Object.fromEntries(Object.entries(doc.config).map(([key, value]) => [key, { value: typeof value === "string" ? value : JSON.stringify(value), secret: false }]));
}

// ---- The specification ---------------------------------------------------------------------------------------

describe("the driver role's IAM policy (docs/iam-policy.json)", function () {
  const policy = JSON.parse(readFileSync(POLICY_FILE, "utf8")) as Policy;
  const scanned = [...sourceFiles("automation"), ...sourceFiles("infra")].filter((f) => !NOT_AWS.some((dir) => f.startsWith(dir + path.sep)));
  const sdkScan = scanned.map((file) => scanSdkUses(file, readFileSync(path.join(ROOT, file), "utf8")));
  const sdkUses = sdkScan.flatMap((s) => s.found);
  const typeScan = sourceFiles("infra").map((file) => scanResourceTypes(file, readFileSync(path.join(ROOT, file), "utf8")));
  const declaredTypes = typeScan.flatMap((s) => s.found);

  describe("is a valid identity policy", function () {
    it("has the current policy language version and at least one statement", function () {
      expect(policy.Version).to.equal("2012-10-17");
      expect(policy.Statement).to.be.an("array").with.length.greaterThan(0);
    });

    it("names every statement with a unique alphanumeric Sid", function () {
      // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html
      const sids = policy.Statement.map((s) => s.Sid);
      for (const sid of sids) expect(sid).to.match(/^[A-Za-z0-9]+$/);
      expect(new Set(sids).size).to.equal(sids.length);
    });

    it("uses only Sid, Effect, Action and Resource, with service-prefixed actions and ARN or * resources", function () {
      for (const s of policy.Statement) {
        expect(Object.keys(s).sort(), s.Sid).to.deep.equal(["Action", "Effect", "Resource", "Sid"]);
        expect(s.Effect, s.Sid).to.be.oneOf(["Allow", "Deny"]);
        for (const action of list(s.Action)) expect(action, s.Sid).to.match(/^[a-z0-9-]+:[A-Za-z0-9*?]+$/);
        for (const resource of list(s.Resource)) expect(resource, s.Sid).to.match(/^(\*|arn:aws:[a-z0-9-]+:[a-z0-9-]*:[0-9*]*:.+)$/);
      }
    });
  });

  describe("covers every AWS SDK call the driver makes", function () {
    it("finds the driver's S3 calls (the scan itself works)", function () {
      expect(sdkUses.map((u) => u.name)).to.include.members(["PutObjectCommand", "GetObjectCommand", "ListObjectsV2Command", "DeleteObjectsCommand"]);
    });

    it("knows the IAM actions of every value imported from @aws-sdk", function () {
      expect([...sdkScan.flatMap((s) => s.problems), ...sdkActions(sdkUses).problems]).to.deep.equal([]);
    });

    it("allows each of those actions", function () {
      expect(missingActions(policy, sdkActions(sdkUses).found)).to.deep.equal([]);
    });
  });

  describe("covers every resource the Pulumi program declares", function () {
    let program: ProgramResult;

    before(async function () {
      program = await runProgram({ stackName: "local", config: localStackConfig() });
    });

    it("finds the program's resource types in its source (the scan itself works)", function () {
      expect(declaredTypes).to.include.members(["s3.Bucket", "cloudfront.Distribution", "cloudfront.KeyValueStore", "cloudfront.KeyvaluestoreKey"]);
    });

    it("knows the IAM actions of every resource type in the source", function () {
      expect([...typeScan.flatMap((s) => s.problems), ...resourceActions(declaredTypes).problems]).to.deep.equal([]);
    });

    it("knows every AWS resource type the program actually registers (nothing declared past the source scan)", function () {
      const registered = program.resources.map((r) => r.type).filter((t) => t.startsWith("aws:"));
      expect(registered).to.have.length.greaterThan(0);
      expect(registered.filter((t) => typeKey(t) === undefined || !declaredTypes.includes(typeKey(t) as string))).to.deep.equal([]);
    });

    it("allows the provider's create, read, update and delete of each, and its credential check", function () {
      expect(missingActions(policy, [...resourceActions(declaredTypes).found, ...PROVIDER_ACTIONS])).to.deep.equal([]);
    });

    it("grants its bucket actions on the buckets the program creates, whose names Pulumi derives from the logical names", function () {
      // Auto-naming appends a random suffix to the logical name. https://www.pulumi.com/docs/iac/concepts/resources/names/#autonaming
      const buckets = program.resources.filter((r) => r.type === "aws:s3/bucket:Bucket");
      expect(buckets).to.have.length.greaterThan(0);
      for (const bucket of buckets) {
        const explicit = bucket.inputs.bucket ?? bucket.inputs.bucketPrefix;
        expect(explicit, `${bucket.name}: an explicit bucket name needs its own pattern in the policy`).to.equal(undefined);
        const arn = `arn:aws:s3:::${bucket.name}-0a1b2c3`;
        for (const action of RESOURCE_ACTIONS["s3.Bucket"]) expect(allows(policy, action, arn), `${action} on ${arn}`).to.equal(true);
        expect(allows(policy, "s3:PutObject", `${arn}/releases/1.0.0/index.html`), `s3:PutObject in ${bucket.name}`).to.equal(true);
        expect(allows(policy, "s3:GetObject", `${arn}/releases/1.0.0/index.html`), `s3:GetObject in ${bucket.name}`).to.equal(true);
      }
    });

    it("lets only the origin buckets lose objects: audit records are never deleted", function () {
      expect(allows(policy, "s3:DeleteObject", "arn:aws:s3:::origin-green-0a1b2c3/releases/1.0.0/app.js")).to.equal(true);
      expect(allows(policy, "s3:DeleteObject", "arn:aws:s3:::audit-log-0a1b2c3/audit/dev/000001.json")).to.equal(false);
    });

    it("lets the routing record be written through the KeyValueStore data plane", function () {
      const store = "arn:aws:cloudfront::123456789012:key-value-store/54947df8-0e9e-4471-a2f9-9af509fb5889";
      for (const action of ["DescribeKeyValueStore", "GetKey", "PutKey", "DeleteKey", "ListKeys", "UpdateKeys"]) {
        expect(allows(policy, `cloudfront-keyvaluestore:${action}`, store), action).to.equal(true);
      }
    });
  });

  describe("the check itself", function () {
    it("reports an action the policy lacks", function () {
      const withoutPut: Policy = {
        ...policy,
        Statement: policy.Statement.map((s) => ({ ...s, Action: list(s.Action).filter((a) => a !== "s3:PutObject") })),
      };
      expect(missingActions(withoutPut, sdkActions(sdkUses).found)).to.deep.equal(["s3:PutObject"]);
    });

    it("counts a wildcard as allowing what it matches, and nothing else", function () {
      const kvs: Policy = { Version: "2012-10-17", Statement: [{ Sid: "Kvs", Effect: "Allow", Action: "cloudfront-keyvaluestore:*", Resource: "*" }] };
      expect(missingActions(kvs, ["cloudfront-keyvaluestore:PutKey", "cloudfront:CreateKeyValueStore"])).to.deep.equal(["cloudfront:CreateKeyValueStore"]);
    });

    it("lets an explicit deny win over an allow", function () {
      const denied: Policy = {
        Version: "2012-10-17",
        Statement: [
          { Sid: "All", Effect: "Allow", Action: "s3:*", Resource: "*" },
          { Sid: "NoDelete", Effect: "Deny", Action: "s3:DeleteObject", Resource: "*" },
        ],
      };
      expect(missingActions(denied, ["s3:GetObject", "s3:DeleteObject"])).to.deep.equal(["s3:DeleteObject"]);
    });

    it("reports an SDK command missing from the table, and one that bypasses the @aws-sdk imports", function () {
      const source = [
        'import { CopyObjectCommand, S3Client, type PutObjectCommandInput } from "@aws-sdk/client-s3";',
        'import { GetObjectCommand } from "./s3Helpers";',
        "await s3.send(new CopyObjectCommand({}));",
        "await s3.send(new GetObjectCommand({}));",
      ].join("\n");
      const scan = scanSdkUses("automation/new.ts", source);
      expect(scan.found.map((u) => u.name)).to.deep.equal(["CopyObjectCommand", "S3Client"]);
      expect(scan.problems).to.deep.equal(["automation/new.ts: new GetObjectCommand( is not imported from an @aws-sdk package, so its AWS action cannot be looked up"]);
      expect(sdkActions(scan.found).problems).to.deep.equal([
        "automation/new.ts: CopyObjectCommand from @aws-sdk/client-s3 is not in SDK_ACTIONS (add the IAM actions it needs, or [] if it calls nothing)",
      ]);
    });

    it("reads dynamic imports and namespace imports too", function () {
      const source = [
        'const { waitUntilDistributionDeployed } = await import("@aws-sdk/client-cloudfront");',
        'import * as kvs from "@aws-sdk/client-cloudfront-keyvaluestore";',
        "await client.send(new kvs.PutKeyCommand({}));",
      ].join("\n");
      const scan = scanSdkUses("automation/wait.ts", source);
      expect(sdkActions(scan.found).found.sort()).to.deep.equal(["cloudfront-keyvaluestore:PutKey", "cloudfront:GetDistribution"]);
    });

    it("reports a Pulumi resource type missing from the table", function () {
      const scan = scanResourceTypes("infra/components/logs.ts", 'import * as aws from "@pulumi/aws";\nnew aws.s3.BucketLogging("logs", {});');
      expect(scan.found).to.deep.equal(["s3.BucketLogging"]);
      expect(resourceActions(scan.found).problems).to.deep.equal(["aws.s3.BucketLogging is not in RESOURCE_ACTIONS (add what the provider calls to create, read, update and delete it)"]);
    });

    it("reports @pulumi/aws imported under a name the scan would not see", function () {
      expect(scanResourceTypes("infra/x.ts", 'import { s3 } from "@pulumi/aws";').problems).to.have.length(1);
    });
  });
});
