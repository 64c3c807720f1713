// The router: the routing record in a CloudFront KeyValueStore and the two CloudFront Functions that read it.
// Weights change by rewriting the record (seconds to propagate); the function code changes only when the
// stable slot (baked in as the KVS-failure fallback) or the router source changes.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { viewerSettings, type StackConfig } from "../config";
import { viewerRequestCode, viewerResponseCode } from "../routerCode";
import { encodeRoutingRecord, ROUTING_KEY, routingRecord } from "../routing";

export const ROUTER_TYPE = "picasso:widget:Router";

// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-javascript-runtime-20.html
const FUNCTION_RUNTIME = "cloudfront-js-2.0";

/** Arguments of {@link Router}. */
export interface RouterArgs {
  /** The validated stack config: weights, releases, stable slot and revision go into the routing record. */
  config: StackConfig;
  /** SHA-256 (hex) of the preview token, or "" to disable the preview route. Not a secret (see index.ts). */
  previewTokenHash: pulumi.Input<string>;
  /** Resources the routing changes must wait for (the revision guard: a stale stack file must fail before traffic moves). */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class Router extends pulumi.ComponentResource {
  public readonly keyValueStore: aws.cloudfront.KeyValueStore;
  public readonly viewerRequest: aws.cloudfront.Function;
  public readonly viewerResponse: aws.cloudfront.Function;

  constructor(name: string, args: RouterArgs, opts?: pulumi.ComponentResourceOptions) {
    super(ROUTER_TYPE, name, {}, opts);
    const { config } = args;
    const childOpts = { parent: this, dependsOn: args.dependsOn };

    this.keyValueStore = new aws.cloudfront.KeyValueStore(`${name}-kvs`, { comment: "picasso-widget routing record" }, { parent: this });
    new aws.cloudfront.KeyvaluestoreKey(
      `${name}-record`,
      {
        keyValueStoreArn: this.keyValueStore.arn,
        key: ROUTING_KEY,
        value: pulumi.output(args.previewTokenHash).apply((hash) => encodeRoutingRecord(routingRecord(config, hash))),
      },
      childOpts,
    );
    // `cf.kvs()` without an id reads the one associated store, so exactly one is associated.
    // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-custom-methods.html
    this.viewerRequest = new aws.cloudfront.Function(
      `${name}-viewer-request`,
      {
        runtime: FUNCTION_RUNTIME,
        comment: "picasso-widget: pick the slot, rewrite the URI to its release prefix, redirect entry points to their release",
        code: viewerRequestCode({ slot: config.stable, release: config.slots[config.stable].release ?? "" }, viewerSettings(config.embedding)),
        keyValueStoreAssociations: [this.keyValueStore.arn],
        publish: true,
      },
      childOpts,
    );
    this.viewerResponse = new aws.cloudfront.Function(
      `${name}-viewer-response`,
      {
        runtime: FUNCTION_RUNTIME,
        comment: "picasso-widget: slot/release headers, viewer Cache-Control, the stickiness cookie",
        code: viewerResponseCode(viewerSettings(config.embedding)),
        publish: true,
      },
      childOpts,
    );
    this.registerOutputs({
      keyValueStoreArn: this.keyValueStore.arn,
      viewerRequestFunction: this.viewerRequest.name,
      viewerResponseFunction: this.viewerResponse.name,
    });
  }
}
