// The CDN: one distribution in front of both slot buckets, reached through Origin Access Control, with the
// router functions on every request and the security headers on every response.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { SLOTS, type EmbeddingConfig, type Environment, type Slot } from "../config";

export const CDN_TYPE = "picasso:widget:Cdn";

/** Arguments of {@link Cdn}. */
export interface CdnArgs {
  /** The slot buckets; each becomes an origin whose id is its slot name. */
  buckets: Record<Slot, aws.s3.Bucket>;
  /** The stable slot: the default behaviour's origin, used when the function selects none. */
  stable: Slot;
  /** Published viewer-request function (slot choice and URI rewrite). */
  viewerRequestArn: pulumi.Input<string>;
  /** Published viewer-response function (slot/release headers, stickiness cookie). */
  viewerResponseArn: pulumi.Input<string>;
  /** Production is served from every edge location; the other environments from the cheapest class. */
  environment: Environment;
  /** Custom domain; set together with `certificateArn`. @default the cloudfront.net domain */
  domain?: string;
  /** ACM certificate in us-east-1 for `domain`. @default the CloudFront default certificate */
  certificateArn?: string;
  /** Who may frame the widget and read its assets (stack config `embedding`). */
  embedding: Pick<EmbeddingConfig, "corsOrigins" | "frameAncestors">;
  /** The path the driver probes each slot on (stack config `verification.healthPath`): never cached at the edge. */
  healthPath: string;
}

/**
 * AWS's managed cache policy CachingDisabled (TTLs 0, nothing in the key): every request goes to the origin.
 * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html#managed-cache-policy-caching-disabled
 */
export const CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";

/** A year: what CloudFront keeps any object for (see the cache policy). */
const YEAR_SECONDS = 31_536_000;

export class Cdn extends pulumi.ComponentResource {
  public readonly distribution: aws.cloudfront.Distribution;

  constructor(name: string, args: CdnArgs, opts?: pulumi.ComponentResourceOptions) {
    super(CDN_TYPE, name, {}, opts);

    const originAccess = new aws.cloudfront.OriginAccessControl(
      `${name}-oac`,
      { description: "picasso-widget slot buckets", originAccessControlOriginType: "s3", signingBehavior: "always", signingProtocol: "sigv4" },
      { parent: this },
    );

    // The cache key is the URI alone. The viewer-request function rewrites the URI to
    // /<slot>/<release>/<path> before the cache lookup, so slot and release are already in the key;
    // cookies (the per-viewer stickiness cookie above all), headers and query strings would only split the cache.
    // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/controlling-the-cache-key.html
    // A release's prefix never changes once uploaded, so CloudFront keeps every object a year, whatever its
    // Cache-Control says (the minimum TTL wins over a shorter max-age or no-cache): the CDN's TTL lives here, and the
    // Cache-Control viewers get is set by the viewer-response function.
    // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/Expiration.html
    const cachePolicy = new aws.cloudfront.CachePolicy(
      `${name}-cache`,
      {
        comment: "picasso-widget: URI-only cache key; release prefixes are immutable, kept a year",
        minTtl: YEAR_SECONDS,
        defaultTtl: YEAR_SECONDS,
        maxTtl: YEAR_SECONDS,
        parametersInCacheKeyAndForwardedToOrigin: {
          cookiesConfig: { cookieBehavior: "none" },
          headersConfig: { headerBehavior: "none" },
          queryStringsConfig: { queryStringBehavior: "none" },
          enableAcceptEncodingGzip: true,
          enableAcceptEncodingBrotli: true,
        },
      },
      { parent: this },
    );

    const { corsOrigins, frameAncestors } = args.embedding;
    const securityHeaders = new aws.cloudfront.ResponseHeadersPolicy(
      `${name}-security-headers`,
      {
        comment: "picasso-widget: HSTS, nosniff, frame-ancestors, referrer policy, CORS for embedding pages",
        securityHeadersConfig: {
          // Two years with includeSubdomains and preload: the HSTS preload list requires at least one year.
          // https://hstspreload.org/#submission-requirements
          strictTransportSecurity: { accessControlMaxAgeSec: 63_072_000, includeSubdomains: true, preload: true, override: true },
          contentTypeOptions: { override: true },
          // The widget is framed by customers' pages: CSP frame-ancestors names who may (X-Frame-Options can only say
          // DENY or SAMEORIGIN, and a browser ignores it when frame-ancestors is present).
          // https://developer.mozilla.org/docs/Web/HTTP/Headers/Content-Security-Policy/frame-ancestors
          contentSecurityPolicy: { contentSecurityPolicy: `frame-ancestors ${frameAncestors.join(" ")}`, override: true },
          // Same-origin requests carry the page's full URL, which the router reads to serve a path-absolute reference
          // from the page's own release (infra/router/viewer-request.js); other origins get the origin only.
          referrerPolicy: { referrerPolicy: "strict-origin-when-cross-origin", override: true },
        },
        // CloudFront answers a CORS request (one with an Origin header) with Access-Control-Allow-Origin when the
        // origin is in the list, or "*" for any. https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/understanding-response-headers-policies.html#understanding-response-headers-policies-cors
        corsConfig: {
          accessControlAllowCredentials: false,
          accessControlAllowHeaders: { items: ["*"] },
          accessControlAllowMethods: { items: ["GET", "HEAD"] },
          accessControlAllowOrigins: { items: corsOrigins },
          accessControlMaxAgeSec: 600,
          originOverride: true,
        },
      },
      { parent: this },
    );

    // Every request runs the router functions and gets the security headers; only the cache policy differs by path.
    const behavior = {
      targetOriginId: args.stable,
      viewerProtocolPolicy: "redirect-to-https",
      allowedMethods: ["GET", "HEAD", "OPTIONS"],
      cachedMethods: ["GET", "HEAD"],
      compress: true,
      responseHeadersPolicyId: securityHeaders.id,
      functionAssociations: [
        { eventType: "viewer-request", functionArn: args.viewerRequestArn },
        { eventType: "viewer-response", functionArn: args.viewerResponseArn },
      ],
    };

    const customDomain = args.domain !== undefined && args.certificateArn !== undefined;
    this.distribution = new aws.cloudfront.Distribution(
      `${name}-distribution`,
      {
        comment: "picasso-widget blue/green",
        enabled: true,
        isIpv6Enabled: true,
        httpVersion: "http2and3",
        // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/PriceClass.html
        priceClass: args.environment === "production" ? "PriceClass_All" : "PriceClass_100",
        aliases: customDomain ? [args.domain as string] : [],
        // S3 origins behind OAC need no s3OriginConfig (that block is for the legacy origin access identity).
        origins: SLOTS.map((slot) => ({ originId: slot, domainName: args.buckets[slot].bucketRegionalDomainName, originAccessControlId: originAccess.id })),
        defaultCacheBehavior: { ...behavior, cachePolicyId: cachePolicy.id },
        // The health path, which the driver probes on each slot at every step, is routed by weight like any plain
        // path, and its rewritten URI (/<slot>/<release>/version.json) would be cached a year: after the first viewer
        // per edge the probes would measure the cache, not the slot. Uncached, each probe reaches the slot's bucket.
        // A behaviour is chosen by the viewer's path, before the viewer-request function rewrites it.
        // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/DownloadDistValuesCacheBehavior.html#DownloadDistValuesPathPattern
        orderedCacheBehaviors: [{ ...behavior, pathPattern: args.healthPath, cachePolicyId: CACHING_DISABLED_POLICY_ID }],
        restrictions: { geoRestriction: { restrictionType: "none" } },
        // Only the final step and a revert change the distribution itself (the default origin follows the stable
        // slot); traffic moves through the KeyValueStore, and the driver verifies what the edge serves. Waiting for
        // the distribution's own rollout (minutes) would hold those `up`s for nothing.
        // https://www.pulumi.com/registry/packages/aws/api-docs/cloudfront/distribution/#waitfordeployment_nodejs
        waitForDeployment: false,
        // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/secure-connections-supported-viewer-protocols-ciphers.html
        viewerCertificate: customDomain
          ? { acmCertificateArn: args.certificateArn, sslSupportMethod: "sni-only", minimumProtocolVersion: "TLSv1.2_2021" }
          : { cloudfrontDefaultCertificate: true },
      },
      { parent: this },
    );
    this.registerOutputs({ distributionId: this.distribution.id, distributionDomain: this.distribution.domainName });
  }
}
