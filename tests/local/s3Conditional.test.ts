// The local S3 enforces conditional writes as S3 documents them; everything else passes through to s3rver unchanged.
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { localS3Client, type LocalS3, startS3 } from "../../automation/local/s3";

interface S3Failure {
  name: string;
  message: string;
  $metadata: { httpStatusCode?: number; attempts?: number };
}

/** The SDK error a command fails with; fails the test when it succeeds. */
async function failure(promise: Promise<unknown>): Promise<S3Failure> {
  try {
    await promise;
  } catch (err) {
    return err as S3Failure;
  }
  throw new Error("expected the request to fail, and it succeeded");
}

describe("local S3 conditional writes (through @aws-sdk/client-s3)", () => {
  let dir: string;
  let server: LocalS3;
  let s3: S3Client;
  let bucket: string;
  let n = 0;

  const put = (key: string, body: string, condition: { IfNoneMatch?: string; IfMatch?: string } = {}) =>
    s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...condition }));
  const read = async (key: string) => (await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body?.transformToString()) ?? "";

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "s3-conditional-"));
    server = await startS3({ directory: dir });
    s3 = localS3Client(server.endpoint);
  });
  after(async () => {
    s3.destroy();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    bucket = `conditional-${++n}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  it("creates an absent key with If-None-Match: * once, and answers the second create 412 PreconditionFailed, leaving the first", async () => {
    const created = await put("lease.json", "first", { IfNoneMatch: "*" });
    expect(created.ETag).to.be.a("string");
    const refused = await failure(put("lease.json", "second", { IfNoneMatch: "*" }));
    expect(refused.name).to.equal("PreconditionFailed");
    expect(refused.$metadata.httpStatusCode).to.equal(412);
    expect(await read("lease.json")).to.equal("first");
  });

  it("replaces an object whose ETag matches If-Match, and answers a stale ETag 412, leaving the newer object", async () => {
    const { ETag: first } = await put("lease.json", "v1");
    const { ETag: second } = await put("lease.json", "v2", { IfMatch: first });
    expect(second).to.be.a("string").and.not.equal(first);
    expect(await read("lease.json")).to.equal("v2");

    const refused = await failure(put("lease.json", "v3", { IfMatch: first }));
    expect(refused.name).to.equal("PreconditionFailed");
    expect(refused.$metadata.httpStatusCode).to.equal(412);
    expect(await read("lease.json")).to.equal("v2");
  });

  it("answers If-Match on a key with no object 404 NoSuchKey, writing nothing", async () => {
    const refused = await failure(put("absent.json", "v1", { IfMatch: '"0123456789abcdef0123456789abcdef"' }));
    expect(refused.$metadata.httpStatusCode).to.equal(404);
    expect(refused.name).to.equal("NoSuchKey");
    expect((await failure(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "absent.json" })))).$metadata.httpStatusCode).to.equal(404);
  });

  it("lets exactly one of eight concurrent creates of one key win; the others get 409 ConditionalRequestConflict or 412", async () => {
    const body = (i: number) => `writer ${i} `.repeat(50_000);
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => put("race.json", body(i), { IfNoneMatch: "*" })));
    const winners = outcomes.flatMap((o, i) => (o.status === "fulfilled" ? [i] : []));
    expect(winners).to.have.length(1);
    for (const o of outcomes) {
      if (o.status === "rejected") expect((o.reason as S3Failure).$metadata.httpStatusCode).to.be.oneOf([409, 412]);
    }
    expect(await read("race.json")).to.equal(body(winners[0]));
  });

  it("answers 409 ConditionalRequestConflict while another conditional write to the key is in flight, then 412 once it landed", async () => {
    // A create held open mid-body: unsigned, which s3rver accepts, so the test controls when it completes.
    const held = "held open";
    const url = new URL(`${server.endpoint}/${bucket}/held.json`);
    let answered: (status: number) => void = () => undefined;
    const status = new Promise<number>((resolve) => (answered = resolve));
    const first = request(url, { method: "PUT", headers: { "if-none-match": "*", "content-length": Buffer.byteLength(held) } }, (res) => {
      res.resume();
      answered(res.statusCode ?? 0);
    });
    first.write(held.slice(0, 4));
    try {
      await sleep(100);
      const conflict = await failure(put("held.json", "second", { IfNoneMatch: "*" }));
      expect(conflict.name).to.equal("ConditionalRequestConflict");
      expect(conflict.$metadata.httpStatusCode).to.equal(409);
    } catch (err) {
      // Never leave the held request open: the server's close() would wait for it.
      first.destroy();
      throw err;
    }
    first.end(held.slice(4));
    expect(await status).to.equal(200);
    const refused = await failure(put("held.json", "second", { IfNoneMatch: "*" }));
    expect(refused.$metadata.httpStatusCode).to.equal(412);
    expect(await read("held.json")).to.equal(held);
  });

  it("keeps conditional writes to different keys apart: both succeed", async () => {
    const [a, b] = await Promise.all([put("a.json", "a", { IfNoneMatch: "*" }), put("b.json", "b", { IfNoneMatch: "*" })]);
    expect(a.ETag).to.be.a("string");
    expect(b.ETag).to.be.a("string");
  });

  it("applies If-None-Match to CopyObject's destination and to CompleteMultipartUpload", async () => {
    await put("source.json", "source");
    await put("taken.json", "taken");
    const copy = await failure(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "taken.json", CopySource: `${bucket}/source.json`, IfNoneMatch: "*" })));
    expect(copy.$metadata.httpStatusCode).to.equal(412);
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "copy.json", CopySource: `${bucket}/source.json`, IfNoneMatch: "*" }));
    expect(await read("copy.json")).to.equal("source");

    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: "taken.json" }));
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: "taken.json", UploadId, PartNumber: 1, Body: "multipart" }));
    const complete = await failure(
      s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: "taken.json", UploadId, IfNoneMatch: "*", MultipartUpload: { Parts: [{ ETag, PartNumber: 1 }] } })),
    );
    expect(complete.$metadata.httpStatusCode).to.equal(412);
    expect(await read("taken.json")).to.equal("taken");
  });

  it("passes unconditional PUT, GET, HEAD, LIST and DELETE through unchanged, metadata included", async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "site/index.html", Body: "<p>hi</p>", ContentType: "text/html", Metadata: { release: "1.0.0" } }));
    await put("site/index.html", "<p>again</p>");
    await put("site/app.js", "js");
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "site/index.html" }));
    expect(await got.Body?.transformToString()).to.equal("<p>again</p>");
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "site/app.js" }));
    expect(head.ContentLength).to.equal(2);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "site/" }));
    expect((listed.Contents ?? []).map((o) => o.Key)).to.deep.equal(["site/app.js", "site/index.html"]);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: "site/app.js" }));
    expect((await failure(s3.send(new GetObjectCommand({ Bucket: bucket, Key: "site/app.js" })))).name).to.equal("NoSuchKey");
  });

  it("creates again with If-None-Match: * after the object was deleted", async () => {
    await put("lease.json", "v1", { IfNoneMatch: "*" });
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: "lease.json" }));
    await put("lease.json", "v2", { IfNoneMatch: "*" });
    expect(await read("lease.json")).to.equal("v2");
  });

  it("never lets a GET see a partial object while PUTs replace it (S3 never adds partial objects)", async () => {
    // 256 KiB bodies each made of one repeated letter: a torn read shows up as a short body or mixed letters.
    const body = (letter: string) => letter.repeat(256 * 1024);
    await put("big.json", body("a"));
    const seen = new Set<string>();
    const writes = (async () => {
      for (const letter of "bcdefghijk") await put("big.json", body(letter));
    })();
    let done = false;
    void writes.finally(() => (done = true));
    const reads = Array.from({ length: 4 }, async () => {
      while (!done) {
        const text = await read("big.json");
        seen.add(text.length === 256 * 1024 && text === text[0].repeat(text.length) ? "whole" : `torn (${text.length} bytes)`);
      }
    });
    await Promise.all([writes, ...reads]);
    expect([...seen]).to.deep.equal(["whole"]);
    expect(await read("big.json")).to.equal(body("k"));
  });

  it("keeps the object it had when a PUT's client dies before sending the whole body", async () => {
    await put("lease.json", '{"holder":"a"}');
    const { port } = new URL(server.endpoint);
    // Announces 100 bytes, sends 10, and is gone: as a process killed while renewing its lease.
    await new Promise<void>((resolve) => {
      const req = request({ host: "127.0.0.1", port, method: "PUT", path: `/${bucket}/lease.json`, headers: { "content-length": 100 } });
      req.on("error", () => resolve());
      req.write("0123456789", () => setTimeout(() => req.destroy(), 50));
      req.on("close", () => resolve());
    });
    await sleep(200);
    expect(await read("lease.json")).to.equal('{"holder":"a"}');
  });
});
