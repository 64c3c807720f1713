// What every bucket of the stack gets, whatever it holds: no public access, no ACLs, versioning, encryption at rest,
// and TLS only. Resources are children of the caller's component, so their names and URNs stay the caller's.
import * as aws from "@pulumi/aws";
import type * as pulumi from "@pulumi/pulumi";

/**
 * Declares the bucket's private settings, one after another: S3 answers OperationAborted to concurrent
 * configuration changes of one bucket (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
 * Returns the last of them: a bucket policy must wait for it (and so for the public-access block).
 */
export function makePrivate(name: string, bucket: aws.s3.Bucket, parent: pulumi.Resource): pulumi.Resource {
  const block = new aws.s3.BucketPublicAccessBlock(
    name,
    { bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
    { parent },
  );
  // ACLs disabled: the bucket owner owns every object, so access is decided by the bucket policy alone.
  // https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html
  const ownership = new aws.s3.BucketOwnershipControls(name, { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } }, { parent, dependsOn: [block] });
  // Versioning keeps an overwritten or deleted object recoverable.
  const versioning = new aws.s3.BucketVersioning(name, { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } }, { parent, dependsOn: [ownership] });
  // SSE-S3 rather than SSE-KMS: OAC reading SSE-KMS objects needs a key policy for CloudFront as well.
  // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html#create-oac-overview-s3
  return new aws.s3.BucketServerSideEncryptionConfiguration(
    name,
    { bucket: bucket.id, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }] },
    { parent, dependsOn: [versioning] },
  );
}

/** The policy statement that denies every request made over plain HTTP. */
export function denyPlainHttp(bucketArn: string): object {
  return {
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html#transit
    Sid: "DenyPlainHttp",
    Effect: "Deny",
    Principal: "*",
    Action: "s3:*",
    Resource: [bucketArn, `${bucketArn}/*`],
    Condition: { Bool: { "aws:SecureTransport": "false" } },
  };
}
