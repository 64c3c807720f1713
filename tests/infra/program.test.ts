// The real infra/ program, run for each stack file under Pulumi mocks (the local engine's runner): what it
// declares must be the private-origin, TLS-only, weighted blue/green setup of design section 3.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { expect } from "chai";
import { parse } from "yaml";
import { runProgram, type DeclaredResource, type ProgramResult } from "../../automation/local/program";
import type { ConfigMap } from "../../automation/port";
import { servedOnKvsFailure } from "./fallback";
import { CACHING_DISABLED_POLICY_ID } from "../../infra/components/cdn";
import { checkRevision } from "../../infra/components/revisionGuard";
import { SLOTS } from "../../infra/config";
import { decodeRoutingRecord, MAX_ROUTING_RECORD_CHARS, ROUTING_KEY, sha256Hex } from "../../infra/routing";

const STACKS_DIR = path.join(__dirname, "..", "..", "stacks");

/** A stack file as Pulumi reads it: objects JSON-encoded. */
function stackFileConfig(stack: string): ConfigMap {
  const doc = parse(readFileSync(path.join(STACKS_DIR, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
  return Object.fromEntries(Object.entries(doc.config).map(([key, value]) => [key, { value: typeof value === "string" ? value : JSON.stringify(value), secret: false }]));
}

const json = (value: unknown) => ({ value: JSON.stringify(value), secret: false });

interface Case {
  stack: string;
  config: ConfigMap;
  token: string;
  domain?: string;
}

// Mid-rollout on every stack: green (r2) takes 25 percent, blue (r1) is stable, the driver has raised the revision to 7.
function rolloutCase(stack: string): Case {
  const config: ConfigMap = {
    ...stackFileConfig(stack),
    "picasso-widget:slots": json({ blue: { release: "r1" }, green: { release: "r2" } }),
    "picasso-widget:weights": json({ blue: 75, green: 25 }),
    "picasso-widget:revision": json(7),
  };
  const fileToken = config["picasso-widget:previewToken"];
  // The local stack keeps its token in the file; the others get one the way users set it: `pulumi config set --secret`.
  const token = fileToken?.value ?? `${stack}-preview-token-5f0c2a9e8b7d4c1a`;
  config["picasso-widget:previewToken"] = { value: token, secret: fileToken === undefined };
  if (stack !== "production") return { stack, config, token };
  const domain = "widget.example.com";
  config["picasso-widget:domain"] = { value: domain, secret: false };
  config["picasso-widget:certificateArn"] = { value: "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", secret: false };
  return { stack, config, token, domain };
}

function only(result: ProgramResult, type: string): DeclaredResource[] {
  return result.resources.filter((r) => r.type === type);
}

function one(result: ProgramResult, type: string, name?: string): DeclaredResource {
  const found = only(result, type).filter((r) => name === undefined || r.name === name);
  expect(found, `${type} ${name ?? ""}`).to.have.length(1);
  return found[0];
}

interface Statement {
  Effect: string;
  Principal: unknown;
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string>>;
}

for (const stack of ["dev", "staging", "production", "local"]) {
  describe(`infra program on stack ${stack}`, function () {
    const c = rolloutCase(stack);
    let result: ProgramResult;
    let distribution: DeclaredResource;
    let distributionArn: string;

    before(async function () {
      result = await runProgram({ stackName: stack, config: c.config });
      distribution = one(result, "aws:cloudfront/distribution:Distribution");
      distributionArn = String(distribution.state.arn);
      expect(distributionArn).to.match(/^arn:aws:cloudfront::\d{12}:distribution\/E[0-9A-Z]+$/);
    });

    it("declares three private buckets (two slots, the audit log): all four public-access blocks, owner-enforced, versioned, encrypted", function () {
      const buckets = only(result, "aws:s3/bucket:Bucket");
      const slots = result.outputs.bucketNames as Record<string, string>;
      expect(buckets.map((b) => b.id).sort()).to.deep.equal([slots.blue, slots.green, String(result.outputs.auditBucket)].sort());
      for (const bucket of buckets) {
        const on = (type: string) => only(result, type).filter((r) => r.inputs.bucket === bucket.id);
        const [block] = on("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock");
        expect(block.inputs).to.include({ blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true });
        expect(on("aws:s3/bucketOwnershipControls:BucketOwnershipControls")[0].inputs.rule).to.deep.equal({ objectOwnership: "BucketOwnerEnforced" });
        expect(on("aws:s3/bucketVersioning:BucketVersioning")[0].inputs.versioningConfiguration).to.deep.equal({ status: "Enabled" });
        const [encryption] = on("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration");
        const rules = encryption.inputs.rules as { applyServerSideEncryptionByDefault: { sseAlgorithm: string } }[];
        expect(rules[0].applyServerSideEncryptionByDefault.sseAlgorithm).to.be.oneOf(["AES256", "aws:kms"]);
      }
    });

    it("lets only this distribution read each bucket (cloudfront.amazonaws.com + AWS:SourceArn) and denies plain HTTP", function () {
      const buckets = only(result, "aws:s3/bucket:Bucket").filter((b) => b.id !== result.outputs.auditBucket);
      const policies = only(result, "aws:s3/bucketPolicy:BucketPolicy");
      expect(policies).to.have.length(3);
      for (const bucket of buckets) {
        const bucketArn = String(bucket.state.arn);
        const policy = policies.find((p) => p.inputs.bucket === bucket.id);
        expect(policy, `policy of ${bucket.id}`).to.not.equal(undefined);
        const statements = (JSON.parse(String(policy?.inputs.policy)) as { Statement: Statement[] }).Statement;
        const allows = statements.filter((s) => s.Effect === "Allow");
        expect(allows).to.have.length(1);
        expect(allows[0].Principal).to.deep.equal({ Service: "cloudfront.amazonaws.com" });
        expect(allows[0].Action).to.equal("s3:GetObject");
        expect(allows[0].Resource).to.equal(`${bucketArn}/*`);
        expect(allows[0].Condition).to.deep.equal({ StringEquals: { "AWS:SourceArn": distributionArn } });
        const denies = statements.filter((s) => s.Effect === "Deny");
        expect(denies).to.have.length(1);
        expect(denies[0]).to.deep.include({ Principal: "*", Action: "s3:*", Condition: { Bool: { "aws:SecureTransport": "false" } } });
        expect(denies[0].Resource).to.have.members([bucketArn, `${bucketArn}/*`]);
      }
    });

    it("keeps the audit log in its own bucket: conditional writes only, TLS only, and no access for the distribution", function () {
      const bucket = one(result, "aws:s3/bucket:Bucket", "audit-log");
      expect(result.outputs.auditBucket).to.equal(bucket.id);
      const policy = one(result, "aws:s3/bucketPolicy:BucketPolicy", "audit-log");
      expect(policy.inputs.bucket).to.equal(bucket.id);
      const bucketArn = String(bucket.state.arn);
      const statements = (JSON.parse(String(policy.inputs.policy)) as { Statement: Statement[] }).Statement;
      expect(statements.filter((s) => s.Effect !== "Deny")).to.deep.equal([]);
      expect(statements).to.deep.include.members([
        { Sid: "DenyOverwrites", Effect: "Deny", Principal: "*", Action: "s3:PutObject", NotResource: `${bucketArn}/rollout/*`, Condition: { Null: { "s3:if-none-match": "true" } } },
        {
          Sid: "DenyUnconditionalLeaseWrites",
          Effect: "Deny",
          Principal: "*",
          Action: "s3:PutObject",
          Resource: `${bucketArn}/rollout/*`,
          Condition: { Null: { "s3:if-none-match": "true", "s3:if-match": "true" } },
        },
        { Sid: "DenyPlainHttp", Effect: "Deny", Principal: "*", Action: "s3:*", Resource: [bucketArn, `${bucketArn}/*`], Condition: { Bool: { "aws:SecureTransport": "false" } } },
      ]);
      expect(JSON.stringify(statements)).to.not.contain("cloudfront");
      const origins = distribution.inputs.origins as { domainName: string }[];
      expect(origins.map((o) => o.domainName)).to.not.include(bucket.state.bucketRegionalDomainName);
      expect(origins.map((o) => o.domainName)).to.not.include(bucket.state.bucketDomainName);
    });

    it("reaches the buckets through an origin access control that always signs with sigv4, as origins blue and green", function () {
      const oac = one(result, "aws:cloudfront/originAccessControl:OriginAccessControl");
      expect(oac.inputs).to.include({ originAccessControlOriginType: "s3", signingBehavior: "always", signingProtocol: "sigv4" });
      const origins = distribution.inputs.origins as { originId: string; domainName: string; originAccessControlId: string; s3OriginConfig?: unknown }[];
      expect(origins.map((o) => o.originId).sort()).to.deep.equal([...SLOTS]);
      for (const origin of origins) {
        const bucket = one(result, "aws:s3/bucket:Bucket", `origin-${origin.originId}`);
        expect(origin.domainName).to.equal(bucket.state.bucketRegionalDomainName);
        expect(origin.originAccessControlId).to.equal(oac.id);
        expect(origin.s3OriginConfig).to.equal(undefined);
      }
    });

    it("redirects HTTP to HTTPS, runs both router functions and adds the security headers", function () {
      const behavior = distribution.inputs.defaultCacheBehavior as Record<string, unknown>;
      expect(behavior.viewerProtocolPolicy).to.equal("redirect-to-https");
      expect(behavior.targetOriginId).to.equal("blue");
      expect(distribution.inputs.waitForDeployment).to.equal(false);
      const functionArn = (name: string) => one(result, "aws:cloudfront/function:Function", name).state.arn;
      expect(behavior.functionAssociations).to.have.deep.members([
        { eventType: "viewer-request", functionArn: functionArn("router-viewer-request") },
        { eventType: "viewer-response", functionArn: functionArn("router-viewer-response") },
      ]);
      const headers = one(result, "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy");
      expect(behavior.responseHeadersPolicyId).to.equal(headers.id);
      const security = headers.inputs.securityHeadersConfig as Record<string, Record<string, unknown>>;
      expect(security.strictTransportSecurity).to.include({ includeSubdomains: true, preload: true });
      expect(security.strictTransportSecurity.accessControlMaxAgeSec).to.be.at.least(31_536_000);
      // Framed by customers' pages: who may frame it is CSP frame-ancestors (stack config embedding.frameAncestors).
      expect(security.frameOptions).to.equal(undefined);
      expect(security.contentSecurityPolicy).to.deep.equal({ contentSecurityPolicy: "frame-ancestors *", override: true });
      const cors = headers.inputs.corsConfig as Record<string, Record<string, unknown>>;
      expect(cors.accessControlAllowOrigins).to.deep.equal({ items: ["*"] });
      expect(cors.accessControlAllowMethods).to.deep.equal({ items: ["GET", "HEAD"] });
      expect(security.referrerPolicy.referrerPolicy).to.equal("strict-origin-when-cross-origin");
      expect(security.contentTypeOptions).to.deep.equal({ override: true });
    });

    it("never caches the health path, so the driver's probes reach each slot's bucket, with the same functions and headers", function () {
      const behaviors = distribution.inputs.orderedCacheBehaviors as Record<string, unknown>[];
      const { cachePolicyId: defaultPolicy, ...rest } = distribution.inputs.defaultCacheBehavior as Record<string, unknown>;
      expect(behaviors).to.have.length(1);
      const { cachePolicyId, pathPattern, ...health } = behaviors[0];
      expect(pathPattern).to.equal("/version.json");
      expect(cachePolicyId).to.equal(CACHING_DISABLED_POLICY_ID).and.not.equal(defaultPolicy);
      expect(health).to.deep.equal(rest);
    });

    it("keys the cache on the URI alone (the function has put slot and release into it)", function () {
      const cache = one(result, "aws:cloudfront/cachePolicy:CachePolicy");
      expect((distribution.inputs.defaultCacheBehavior as Record<string, unknown>).cachePolicyId).to.equal(cache.id);
      expect(cache.inputs.parametersInCacheKeyAndForwardedToOrigin).to.deep.include({
        cookiesConfig: { cookieBehavior: "none" },
        headersConfig: { headerBehavior: "none" },
        queryStringsConfig: { queryStringBehavior: "none" },
      });
    });

    it(`uses ${c.domain ? "the custom domain's certificate" : "the CloudFront default certificate"} and the environment's price class`, function () {
      const certificate = distribution.inputs.viewerCertificate;
      if (c.domain) {
        expect(distribution.inputs.aliases).to.deep.equal([c.domain]);
        expect(certificate).to.deep.equal({ acmCertificateArn: c.config["picasso-widget:certificateArn"].value, sslSupportMethod: "sni-only", minimumProtocolVersion: "TLSv1.2_2021" });
      } else {
        expect(certificate).to.deep.equal({ cloudfrontDefaultCertificate: true });
      }
      expect(distribution.inputs.priceClass).to.equal(stack === "production" ? "PriceClass_All" : "PriceClass_100");
      expect(distribution.inputs).to.include({ enabled: true, isIpv6Enabled: true, httpVersion: "http2and3" });
    });

    it("stores the config's weights, releases, revision and the token's hash as a compact routing record", async function () {
      const key = one(result, "aws:cloudfront/keyvaluestoreKey:KeyvaluestoreKey");
      const store = one(result, "aws:cloudfront/keyValueStore:KeyValueStore");
      expect(key.inputs.keyValueStoreArn).to.equal(store.state.arn);
      expect(key.inputs.key).to.equal(ROUTING_KEY);
      const value = String(key.inputs.value);
      expect(value.length).to.be.at.most(MAX_ROUTING_RECORD_CHARS);
      expect(decodeRoutingRecord(value)).to.deep.equal({ rev: 7, stable: "blue", weights: { blue: 75, green: 25 }, releases: { blue: "r1", green: "r2" }, preview: sha256Hex(c.token) });
      const viewerRequest = one(result, "aws:cloudfront/function:Function", "router-viewer-request");
      expect(viewerRequest.inputs.keyValueStoreAssociations).to.deep.equal([store.state.arn]);
      expect(viewerRequest.inputs).to.include({ runtime: "cloudfront-js-2.0", publish: true });
      expect(await servedOnKvsFailure(String(viewerRequest.inputs.code))).to.equal("blue/r1");
    });

    it("exports the distribution, buckets, store, function names and routing revision", function () {
      expect(result.outputs).to.deep.include({
        distributionId: distribution.id,
        distributionDomain: distribution.state.domainName,
        keyValueStoreArn: one(result, "aws:cloudfront/keyValueStore:KeyValueStore").state.arn,
        viewerRequestFunction: one(result, "aws:cloudfront/function:Function", "router-viewer-request").state.name,
        viewerResponseFunction: one(result, "aws:cloudfront/function:Function", "router-viewer-response").state.name,
        routingRevision: 7,
      });
      expect(String(result.outputs.distributionDomain)).to.match(/^d[0-9a-z]+\.cloudfront\.net$/);
    });

    it("never puts the preview token's plaintext into any resource input or output", function () {
      expect(JSON.stringify(result)).to.not.contain(c.token);
    });
  });
}

describe("revision guard", function () {
  it("rejects a revision lower than the deployed one, naming both and `pulumi config refresh`", function () {
    const check = checkRevision({ stack: "staging", revision: 5 }, { stack: "staging", revision: 3 });
    expect(check.failures).to.have.length(1);
    expect(check.failures?.[0].property).to.equal("revision");
    expect(check.failures?.[0].reason).to.match(/revision = 3 is older than the deployed routing revision 5: .*`pulumi config refresh --stack staging`/);
  });

  it("keeps its rule in the provider Pulumi serializes for the engine (a fresh process loads it as the dynamic-provider host does)", function () {
    // Registers one guard under mocks in a child process (Pulumi's runtime state is global), captures the
    // serialized __provider and loads it with require-from-string, as @pulumi/pulumi/cmd/dynamic-provider does.
    const script = `
      const pulumi = require("@pulumi/pulumi");
      let serialized;
      pulumi.runtime.setMocks({ newResource: (a) => { serialized = serialized || a.inputs.__provider; return { id: "guard", state: a.inputs }; }, call: () => ({}) }, "picasso-widget", "staging").then(async () => {
        const { RevisionGuard } = require(${JSON.stringify(path.join(__dirname, "..", "..", "infra", "components", "revisionGuard.ts"))});
        new RevisionGuard("revision-guard", { stack: "staging", revision: 3 });
        await pulumi.runtime.disconnect();
        const provider = require("require-from-string")(serialized).handler();
        const stale = await provider.check({ stack: "staging", revision: 5 }, { stack: "staging", revision: 3 });
        const raised = await provider.check({ stack: "staging", revision: 2 }, { stack: "staging", revision: 3 });
        process.stdout.write(JSON.stringify({ stale, raised }));
      });`;
    const out = execFileSync(process.execPath, ["--require", require.resolve("tsx/cjs"), "-e", script], { cwd: path.join(__dirname, "..", ".."), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const { stale, raised } = JSON.parse(out) as Record<string, ReturnType<typeof checkRevision>>;
    expect(stale.failures?.[0].reason).to.match(/revision = 3 is older than the deployed routing revision 5: .*`pulumi config refresh --stack staging`/);
    expect(raised.failures).to.equal(undefined);
  });

  it("accepts the first deployment, the same revision and a raised one", function () {
    expect(checkRevision({}, { stack: "dev", revision: 0 }).failures).to.equal(undefined);
    expect(checkRevision({ stack: "dev", revision: 4 }, { stack: "dev", revision: 4 }).failures).to.equal(undefined);
    expect(checkRevision({ stack: "dev", revision: 4 }, { stack: "dev", revision: 5 }).failures).to.equal(undefined);
    // No restore exception: the driver's reverts and rollbacks raise the revision too.
    expect(checkRevision({ stack: "dev", revision: 4 }, { stack: "dev", revision: 2 }).failures).to.have.length(1);
  });
});
