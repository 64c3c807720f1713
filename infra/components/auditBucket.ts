// Where the stack's audit log lives on AWS (design section 8: "stored with the stack's state"): a private bucket
// of its own, one object per record under `audit/<stack>/`. Versioned, and its policy admits only conditional
// writes, so a record is never overwritten in place. No CloudFront access: the trail is never served to viewers.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { denyPlainHttp, makePrivate } from "./privateBucket";

export const AUDIT_BUCKET_TYPE = "picasso:widget:AuditBucket";

/** Arguments of {@link AuditBucket}. */
export interface AuditBucketArgs {
  /** Tags applied to the bucket. @default {} */
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** Where the driver keeps each stack's rollout lease and journal (automation/lease.ts): the one object rewritten here. */
export const LEASE_PREFIX = "rollout/";

/**
 * The bucket policy document: audit records must be created with `If-None-Match` (never replaced); the rollout lease
 * may be rewritten, but only as a compare-and-swap (`If-Match`) or a create; plain HTTP is denied to all.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html (example 3: either header)
 */
export function auditBucketPolicy(bucketArn: string): object {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        // A PutObject without If-None-Match could replace a record; with it, S3 refuses an existing key (412).
        Sid: "DenyOverwrites",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:PutObject",
        NotResource: `${bucketArn}/${LEASE_PREFIX}*`,
        Condition: { Null: { "s3:if-none-match": "true" } },
      },
      {
        // Keys in one Null block are ANDed: denied when the write carries neither header.
        Sid: "DenyUnconditionalLeaseWrites",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:PutObject",
        Resource: `${bucketArn}/${LEASE_PREFIX}*`,
        Condition: { Null: { "s3:if-none-match": "true", "s3:if-match": "true" } },
      },
      denyPlainHttp(bucketArn),
    ],
  };
}

export class AuditBucket extends pulumi.ComponentResource {
  public readonly bucket: aws.s3.Bucket;

  constructor(name: string, args: AuditBucketArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super(AUDIT_BUCKET_TYPE, name, {}, opts);
    const childName = `${name}-log`;
    const bucket = new aws.s3.Bucket(childName, { tags: args.tags }, { parent: this });
    // Versioned: a deleted record leaves a delete marker and its earlier versions; `audit verify` names the gap.
    const configured = makePrivate(childName, bucket, this);
    // S3 aborts a PutBucketPolicy that races a PutPublicAccessBlock on the same bucket (OperationAborted).
    new aws.s3.BucketPolicy(childName, { bucket: bucket.id, policy: bucket.arn.apply((arn) => JSON.stringify(auditBucketPolicy(arn))) }, { parent: this, dependsOn: [configured] });
    this.bucket = bucket;
    this.registerOutputs({ bucketName: bucket.bucket });
  }
}
