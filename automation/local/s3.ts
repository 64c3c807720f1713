// The local cloud's S3: s3rver on loopback, reached only through @aws-sdk/client-s3, the same code path as AWS.
import { S3Client } from "@aws-sdk/client-s3";
import { mkdirSync } from "node:fs";

const LOCAL_REGION = "us-east-1";

// s3rver's one built-in key pair; the buckets are private, as with OAC on AWS, so every read is signed.
const LOCAL_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export interface LocalS3 {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  close(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1 (`port` 0 picks a free port), keeping its objects under `directory`. */
export async function startS3(opts: { directory: string; port?: number }): Promise<LocalS3> {
  mkdirSync(opts.directory, { recursive: true });
  // Loaded on first use: commands that refuse bad input, or join a running cloud, never start an S3 server.
  const { default: S3rver } = await import("s3rver");
  // vhostBuckets off: the SDK uses path-style URLs against a loopback IP, which has no bucket subdomains.
  const server = new S3rver({ address: "127.0.0.1", port: opts.port ?? 0, silent: true, directory: opts.directory, vhostBuckets: false });
  const address = await server.run();
  return { endpoint: `http://127.0.0.1:${address.port}`, close: () => server.close() };
}

/** An S3 client for the local S3 at `endpoint`. */
export function localS3Client(endpoint: string): S3Client {
  // The SDK warns on Node 20 about a future support cut-off; this is the documented switch
  // (https://github.com/aws/aws-sdk-js-v3/issues/7983). It would only add noise to local runs.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  return new S3Client({ endpoint, region: LOCAL_REGION, forcePathStyle: true, credentials: LOCAL_CREDENTIALS });
}
