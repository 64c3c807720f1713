// Releases: an artifact folder uploaded under an immutable `<slot>/<release>/` prefix of the slot's bucket, with a
// manifest of each file's SHA-256. The same code runs against AWS S3 and the local cloud's s3rver.
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { Slot } from "../infra/config";
import { UsageError } from "./errors";
import { checkArtifact } from "./references";

export interface ManifestEntry {
  sha256: string;
  size: number;
  contentType: string;
  cacheControl: string;
}

export interface Manifest {
  release: string;
  files: Record<string, ManifestEntry>;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json",
};

/**
 * Every object sits under `<slot>/<release>/`, a prefix that never changes once uploaded, and is what a
 * release-qualified URL (/_r/<slot>/<release>/..., infra/router/viewer-request.js) answers: it may be kept forever.
 * CloudFront's TTL comes from the cache policy, and the viewer-response function sets the Cache-Control viewers get
 * (short for an entry point, whose answer depends on the routing), so this is what the bucket itself says.
 * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/Expiration.html
 */
const CACHE_CONTROL = "public, max-age=31536000, immutable";

export function releasePrefix(slot: Slot, release: string): string {
  return `${slot}/${release}/`;
}

/** The release-qualified URL path of a release: a page and every asset it loads under it come from that release
 * (infra/router/viewer-request.js). */
export function qualifiedPrefix(slot: Slot, release: string): string {
  return `/_r/${slot}/${release}/`;
}

/** Manifests live outside the served `<slot>/` prefixes: the router never rewrites a viewer's URI to them. */
export function manifestKey(release: string): string {
  return `_manifests/${release}.json`;
}

async function listFiles(root: string, dir = root): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const files: string[] = [];
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) files.push(...(await listFiles(root, full)));
    else if (e.isFile()) files.push(path.relative(root, full).split(path.sep).join("/"));
  }
  return files.sort();
}

/**
 * Reads and checks an artifact folder; bad input is a UsageError naming the field, or the file, line and reference that
 * does not resolve inside the artifact. The stack's verification paths are checked where its config is read.
 */
export async function buildManifest(artifactDir: string, release: string): Promise<{ manifest: Manifest; bodies: Map<string, Buffer> }> {
  const stat = await fs.stat(artifactDir).catch(() => undefined);
  if (!stat?.isDirectory()) throw new UsageError(`--artifact = ${JSON.stringify(artifactDir)}: expected an existing folder`);
  const files = await listFiles(artifactDir);
  if (!files.includes("index.html")) throw new UsageError(`--artifact = ${JSON.stringify(artifactDir)}: expected a folder with index.html at its top`);
  // The router reads /_r/<slot>/<release>/ as a release-qualified URL (infra/router/viewer-request.js): a folder of
  // that name could never be reached.
  const reserved = files.find((f) => f.startsWith("_r/"));
  if (reserved !== undefined) throw new UsageError(`--artifact = ${JSON.stringify(artifactDir)}: ${reserved}: expected no top-level folder "_r" (the edge reserves /_r/ for release-qualified URLs)`);
  const bodies = new Map<string, Buffer>();
  const manifest: Manifest = { release, files: {} };
  for (const file of files) {
    const body = await fs.readFile(path.join(artifactDir, file));
    bodies.set(file, body);
    manifest.files[file] = {
      sha256: createHash("sha256").update(body).digest("hex"),
      size: body.length,
      contentType: CONTENT_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream",
      cacheControl: CACHE_CONTROL,
    };
  }
  checkArtifact(bodies);
  return { manifest, bodies };
}

export async function readManifest(s3: S3Client, bucket: string, release: string): Promise<Manifest | undefined> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: manifestKey(release) }));
    return JSON.parse(await res.Body!.transformToString()) as Manifest;
  } catch (err) {
    if ((err as { name?: string }).name === "NoSuchKey" || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw err;
  }
}

export function sameBytes(a: Manifest, b: Manifest): boolean {
  const ka = Object.keys(a.files);
  return ka.length === Object.keys(b.files).length && ka.every((k) => b.files[k]?.sha256 === a.files[k].sha256);
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/**
 * Reads a release's files from `<slot>/<release>/` and checks each against the manifest's size and SHA-256: the bytes
 * are the manifest's, or this throws naming the first file that differs. Returns the bodies, ready to upload elsewhere.
 */
export async function readRelease(s3: S3Client, source: { bucket: string; slot: Slot }, manifest: Manifest, concurrency = 16): Promise<Map<string, Buffer>> {
  const bodies = new Map<string, Buffer>();
  await mapLimit(Object.keys(manifest.files), concurrency, async (file) => {
    const key = releasePrefix(source.slot, manifest.release) + file;
    const res = await s3.send(new GetObjectCommand({ Bucket: source.bucket, Key: key }));
    const body = Buffer.from(await res.Body!.transformToByteArray());
    const sha256 = createHash("sha256").update(body).digest("hex");
    const entry = manifest.files[file];
    if (sha256 !== entry.sha256 || body.length !== entry.size) {
      throw new Error(`s3://${source.bucket}/${key} has sha256 ${sha256.slice(0, 12)} (${body.length} bytes); the manifest says ${entry.sha256.slice(0, 12)} (${entry.size} bytes)`);
    }
    bodies.set(file, body);
  });
  return bodies;
}

export interface UploadResult {
  uploaded: number;
  skipped: number;
  bytes: number;
}

/**
 * Uploads a release to `<slot>/<release>/` with its metadata, then writes the manifest last (a manifest present means
 * the upload completed). Files a completed earlier upload of the same release already holds with the same hash are
 * skipped.
 */
export async function uploadRelease(
  s3: S3Client,
  target: { bucket: string; slot: Slot },
  manifest: Manifest,
  bodies: ReadonlyMap<string, Buffer>,
  concurrency = 16,
): Promise<UploadResult> {
  const previous = await readManifest(s3, target.bucket, manifest.release);
  const files = Object.keys(manifest.files);
  const todo = files.filter((f) => previous?.files[f]?.sha256 !== manifest.files[f].sha256);
  let bytes = 0;
  await mapLimit(todo, concurrency, async (file) => {
    const entry = manifest.files[file];
    const body = bodies.get(file)!;
    bytes += body.length;
    await s3.send(
      new PutObjectCommand({
        Bucket: target.bucket,
        Key: releasePrefix(target.slot, manifest.release) + file,
        Body: body,
        ContentType: entry.contentType,
        CacheControl: entry.cacheControl,
        ChecksumSHA256: Buffer.from(entry.sha256, "hex").toString("base64"),
        // Renamed to x-bluegreen-slot / x-bluegreen-release by the viewer-response function.
        Metadata: { slot: target.slot, release: manifest.release },
      }),
    );
  });
  await s3.send(new PutObjectCommand({ Bucket: target.bucket, Key: manifestKey(manifest.release), Body: JSON.stringify(manifest), ContentType: "application/json" }));
  return { uploaded: todo.length, skipped: files.length - todo.length, bytes };
}

/**
 * Deletes releases beyond the newest `retention` in the bucket, never one in `keep` (referenced by a slot or by
 * one of the last successful updates: a rollback target).
 */
export async function pruneReleases(s3: S3Client, target: { bucket: string; slot: Slot }, retention: number, keep: ReadonlySet<string>): Promise<string[]> {
  const manifests = await listAll(s3, target.bucket, "_manifests/");
  const newestFirst = manifests.sort((a, b) => (b.modified ?? 0) - (a.modified ?? 0)).map((m) => m.key.slice("_manifests/".length, -".json".length));
  const doomed = newestFirst.slice(retention).filter((r) => !keep.has(r));
  for (const release of doomed) {
    const keys = (await listAll(s3, target.bucket, releasePrefix(target.slot, release))).map((o) => o.key);
    keys.push(manifestKey(release));
    for (let i = 0; i < keys.length; i += 1000) {
      await s3.send(new DeleteObjectsCommand({ Bucket: target.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }));
    }
  }
  return doomed;
}

async function listAll(s3: S3Client, bucket: string, prefix: string): Promise<{ key: string; modified?: number }[]> {
  const out: { key: string; modified?: number }[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) out.push({ key: o.Key, modified: o.LastModified?.getTime() });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}
