// The Pulumi program: two S3 origin slots behind one CloudFront distribution, routed by the record in a
// KeyValueStore. The stack config is validated before any resource is declared, so a bad value fails
// the update with nothing changed.
import * as pulumi from "@pulumi/pulumi";
import { checkPreviewToken, CONFIG_NAMESPACE, parseStackConfig, rawFromConfigMap } from "./config";
import { AuditBucket } from "./components/auditBucket";
import { Cdn } from "./components/cdn";
import { OriginBucketPolicies } from "./components/originBucketPolicies";
import { OriginBuckets } from "./components/originBuckets";
import { RevisionGuard } from "./components/revisionGuard";
import { Router } from "./components/router";
import { sha256Hex } from "./routing";

const stackName = pulumi.getStack();

// Every key of the namespace goes through the schema (so an unknown or misspelt key is rejected), read from
// the whole config map rather than key by key. The token's length is checked here too, before anything is
// declared; the token itself is used only through the secret Output below.
const allConfig = Object.entries(pulumi.runtime.allConfig()).map(([key, value]) => [key, { value }] as const);
const { raw, previewToken: previewTokenText } = rawFromConfigMap(Object.fromEntries(allConfig));
checkPreviewToken(previewTokenText, stackName);
const config = parseStackConfig(raw, stackName, { hasPreviewToken: previewTokenText !== undefined });

const previewToken = new pulumi.Config(CONFIG_NAMESPACE).getSecret("previewToken");
// The SHA-256 of a high-entropy token reveals nothing usable, so it is unsecreted: the routing record's
// diff stays readable in `pulumi preview` (a secret would mask every weight change in it).
const previewTokenHash = previewToken === undefined ? "" : pulumi.unsecret(previewToken.apply(sha256Hex));

// Declared first: the routing changes depend on it, so a stale stack file fails before traffic moves.
const revisionGuard = new RevisionGuard("revision-guard", { stack: stackName, revision: config.revision });
const origins = new OriginBuckets("origin");
const router = new Router("router", { config, previewTokenHash, dependsOn: [revisionGuard] });
const cdn = new Cdn("cdn", {
  buckets: origins.buckets,
  stable: config.stable,
  viewerRequestArn: router.viewerRequest.arn,
  viewerResponseArn: router.viewerResponse.arn,
  environment: config.environment,
  domain: config.domain,
  certificateArn: config.certificateArn,
  embedding: config.embedding,
  healthPath: config.verification.healthPath,
});
const audit = new AuditBucket("audit");
new OriginBucketPolicies("origin-policy", { buckets: origins.buckets, configured: origins.configured, distributionArn: cdn.distribution.arn });

export const distributionId = cdn.distribution.id;
export const distributionDomain = cdn.distribution.domainName;
/** The custom domain viewers use, when one is configured. */
export const domain = config.domain;
export const bucketNames = { blue: origins.buckets.blue.bucket, green: origins.buckets.green.bucket };
export const keyValueStoreArn = router.keyValueStore.arn;
export const viewerRequestFunction = router.viewerRequest.name;
export const viewerResponseFunction = router.viewerResponse.name;
export const routingRevision = revisionGuard.revision;
// The driver appends the stack's audit records here (automation/targets.ts reads this output).
export const auditBucket = audit.bucket.bucket;
