// The two origin slots: one private, versioned, encrypted S3 bucket per slot. Their read policy is
// declared apart (OriginBucketPolicies) because it names the distribution, which itself needs the buckets.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { SLOTS, type Slot } from "../config";
import { makePrivate } from "./privateBucket";

export const ORIGIN_BUCKETS_TYPE = "picasso:widget:OriginBuckets";

/** Arguments of {@link OriginBuckets}. */
export interface OriginBucketsArgs {
  /** Tags applied to both buckets. @default {} */
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

export class OriginBuckets extends pulumi.ComponentResource {
  public readonly buckets: Record<Slot, aws.s3.Bucket>;
  /** The bucket policies wait for these: S3 aborts a PutBucketPolicy that races a PutPublicAccessBlock on the same bucket (OperationAborted). */
  public readonly configured: Record<Slot, pulumi.Resource>;

  constructor(name: string, args: OriginBucketsArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super(ORIGIN_BUCKETS_TYPE, name, {}, opts);
    const buckets = {} as Record<Slot, aws.s3.Bucket>;
    const configured = {} as Record<Slot, pulumi.Resource>;
    for (const slot of SLOTS) {
      const childName = `${name}-${slot}`;
      const bucket = new aws.s3.Bucket(childName, { tags: args.tags }, { parent: this });
      configured[slot] = makePrivate(childName, bucket, this);
      buckets[slot] = bucket;
    }
    this.buckets = buckets;
    this.configured = configured;
    this.registerOutputs({ bucketNames: { blue: buckets.blue.bucket, green: buckets.green.bucket } });
  }
}
