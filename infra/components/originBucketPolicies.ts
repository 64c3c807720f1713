// Who may read the origin buckets: only this distribution, through Origin Access Control, over TLS.
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { SLOTS, type Slot } from "../config";
import { denyPlainHttp } from "./privateBucket";

export const ORIGIN_BUCKET_POLICIES_TYPE = "picasso:widget:OriginBucketPolicies";

/** Arguments of {@link OriginBucketPolicies}. */
export interface OriginBucketPoliciesArgs {
  /** The slot buckets to protect. */
  buckets: Record<Slot, aws.s3.Bucket>;
  /** The last of each bucket's private settings (makePrivate); the policy is applied after it. */
  configured: Record<Slot, pulumi.Resource>;
  /** ARN of the one distribution allowed to read (the `AWS:SourceArn` condition). */
  distributionArn: pulumi.Input<string>;
}

/** The bucket policy document: CloudFront (for this distribution only) may get objects; plain HTTP is denied to all. */
export function originBucketPolicy(bucketArn: string, distributionArn: string): object {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AllowThisDistributionToRead",
        Effect: "Allow",
        Principal: { Service: "cloudfront.amazonaws.com" },
        Action: "s3:GetObject",
        Resource: `${bucketArn}/*`,
        Condition: { StringEquals: { "AWS:SourceArn": distributionArn } },
      },
      denyPlainHttp(bucketArn),
    ],
  };
}

export class OriginBucketPolicies extends pulumi.ComponentResource {
  constructor(name: string, args: OriginBucketPoliciesArgs, opts?: pulumi.ComponentResourceOptions) {
    super(ORIGIN_BUCKET_POLICIES_TYPE, name, {}, opts);
    for (const slot of SLOTS) {
      const bucket = args.buckets[slot];
      new aws.s3.BucketPolicy(
        `${name}-${slot}`,
        {
          bucket: bucket.id,
          policy: pulumi.all([bucket.arn, args.distributionArn]).apply(([bucketArn, distributionArn]) => JSON.stringify(originBucketPolicy(bucketArn, distributionArn))),
        },
        { parent: this, dependsOn: [args.configured[slot]] },
      );
    }
    this.registerOutputs({});
  }
}
