import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { expect } from "chai";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { AuditLog, type AuditEntry, FileAuditStore, GENESIS_HASH, S3AuditStore, verifyAuditLines } from "../../automation/audit";
import { localAuditLog } from "../../automation/targets";
import { OperatorNeededError } from "../../automation/errors";
import { sha256Hex } from "../../infra/routing";
import { localS3Client, type LocalS3, startS3 } from "../../automation/local/s3";

const REPO = path.resolve(__dirname, "..", "..");
const TOKEN = "local-preview-token-0123456789";

function entry(i: number): AuditEntry {
  return {
    action: i % 2 === 0 ? "deploy" : "promote",
    actor: `alice-${i}`,
    stack: "local",
    release: `r${i}`,
    slots: { blue: { release: `r${i - 1}` }, green: { release: `r${i}` } },
    weights: { blue: 0, green: 100 },
    result: "succeeded",
    reasons: [],
    timing: { startedAt: new Date(Date.UTC(2025, 0, 1, 0, i)).toISOString(), durationMs: 1000 * i },
  };
}

async function appendAll(log: AuditLog, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await log.append(entry(i));
}

function swap<T>(items: T[], a: number, b: number): T[] {
  const copy = [...items];
  [copy[a], copy[b]] = [copy[b], copy[a]];
  return copy;
}

describe("audit log (file)", () => {
  let dir: string;
  let file: string;
  let log: AuditLog;
  const lines = () => readFileSync(file, "utf8").split("\n").filter((l) => l !== "");
  const rewrite = (ls: string[]) => writeFileSync(file, ls.map((l) => l + "\n").join(""));

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "audit-"));
    file = path.join(dir, "audit.jsonl");
    log = new AuditLog(new FileAuditStore(file), { secrets: [TOKEN] });
    await appendAll(log, 5);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("numbers the records and chains each to the SHA-256 of the previous line's bytes", async () => {
    const records = await log.read();
    expect(records.map((r) => r.seq)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(records[0].prevHash).to.equal(GENESIS_HASH);
    expect(records[3].prevHash).to.equal(sha256Hex(lines()[2]));
    expect(records[4]).to.include({ actor: "alice-5", release: "r5", result: "succeeded" });
  });

  it("verifies an untouched log", async () => {
    expect(await log.verify()).to.deep.equal({ ok: true, count: 5 });
  });

  it("names line 3 when line 3 was edited", async () => {
    const ls = lines();
    ls[2] = ls[2].replace('"actor":"alice-3"', '"actor":"mallory"');
    rewrite(ls);
    const verdict = await log.verify();
    expect(verdict).to.include({ ok: false, line: 3 });
  });

  it("names line 3 when line 3 was deleted", async () => {
    const ls = lines();
    ls.splice(2, 1);
    rewrite(ls);
    expect(await log.verify()).to.deep.include({ ok: false, line: 3 });
  });

  it("names line 2 when lines 2 and 3 were swapped", async () => {
    rewrite(swap(lines(), 1, 2));
    expect(await log.verify()).to.deep.include({ ok: false, line: 2 });
  });

  it("names a line that is no longer JSON, and one that lost a field", () => {
    const ls = lines();
    expect(verifyAuditLines([...ls.slice(0, 3), ls[3].slice(0, 40), ls[4]])).to.deep.include({ ok: false, line: 4 });
    const noActor = JSON.stringify({ ...JSON.parse(ls[1]), actor: undefined });
    expect(verifyAuditLines([ls[0], noActor, ...ls.slice(2)])).to.deep.include({ ok: false, line: 2 });
  });

  it("keeps a removed line visible as a gap after later appends", async () => {
    const ls = lines();
    ls.splice(2, 1);
    rewrite(ls);
    const next = await log.append(entry(6));
    expect(next.seq).to.equal(6);
    expect(await log.verify()).to.deep.include({ ok: false, line: 3 });
  });

  it("never writes the preview token, even when a caller passes it", async () => {
    await log.append({ ...entry(6), reasons: [`probe with ${TOKEN} failed`], details: { previewToken: "short", note: `x-bluegreen-preview: ${TOKEN}:green` } });
    const text = readFileSync(file, "utf8");
    expect(text).not.to.include(TOKEN);
    expect(text).not.to.include('"short"');
    expect((await log.read())[5].reasons).to.deep.equal(["probe with [redacted] failed"]);
  });
});

describe("audit log (S3, against s3rver)", () => {
  let dir: string;
  let s3server: LocalS3;
  let s3: S3Client;
  let log: AuditLog;
  let bucket: string;
  let n = 0;

  const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "audit/production/" }))).Contents ?? []).map((o) => o.Key as string).sort();
  const body = async (key: string) => (await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body?.transformToString()) ?? "";
  const put = (key: string, text: string) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: text }));

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "audit-s3-"));
    s3server = await startS3({ directory: dir });
    s3 = localS3Client(s3server.endpoint);
  });
  after(async () => {
    await s3server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    bucket = `audit-${++n}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    log = new AuditLog(new S3AuditStore(s3, bucket, "production"));
    await appendAll(log, 5);
  });

  it("stores one object per record, keyed by zero-padded seq, and verifies untouched", async () => {
    expect(await keys()).to.deep.equal([1, 2, 3, 4, 5].map((i) => `audit/production/000000000${i}.json`));
    expect(JSON.parse(await body("audit/production/0000000002.json"))).to.include({ seq: 2, actor: "alice-2" });
    expect(await log.verify()).to.deep.equal({ ok: true, count: 5 });
  });

  it("names record 3 when its object was overwritten with edited content", async () => {
    const key = (await keys())[2];
    await put(key, (await body(key)).replace('"result":"succeeded"', '"result":"failed"'));
    expect(await log.verify()).to.deep.include({ ok: false, line: 3 });
  });

  it("names record 3 when its object was deleted", async () => {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: (await keys())[2] }));
    expect(await log.verify()).to.deep.include({ ok: false, line: 3 });
  });

  it("names record 2 when records 2 and 3 swapped places", async () => {
    const [, k2, k3] = await keys();
    const [b2, b3] = [await body(k2), await body(k3)];
    await put(k2, b3);
    await put(k3, b2);
    expect(await log.verify()).to.deep.include({ ok: false, line: 2 });
  });

  it("refuses to write a record whose seq another writer already wrote, leaving it untouched", async () => {
    const key = (await keys())[4];
    const before = await body(key);
    const store = new S3AuditStore(s3, bucket, "production");
    let refused: unknown;
    await store.appendLine(5, '{"seq":5}').catch((err: unknown) => (refused = err));
    expect(refused).to.be.instanceOf(OperatorNeededError);
    expect((refused as Error).message).to.include("record 5 already exists");
    expect(await body(key)).to.equal(before);
  });
});

describe("bluegreen audit verify (CLI, child process)", () => {
  let stateDir: string;
  const run = promisify(execFile);
  const verify = (stack: string) =>
    run(process.execPath, ["bin/bluegreen.js", "audit", "verify", "--stack", stack], { cwd: REPO, env: { ...process.env, BLUEGREEN_STATE_DIR: stateDir } }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );

  before(async () => {
    stateDir = mkdtempSync(path.join(tmpdir(), "audit-cli-"));
    await appendAll(localAuditLog("local-staging", { stateDir }), 4);
  });
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  it("exits 0 and prints the count for an untouched log", async () => {
    const result = await verify("local-staging");
    expect(result.code).to.equal(0);
    expect(result.stdout).to.include("4 records, chain intact");
  });

  it("exits 3 (operator needed) naming the first bad line of a tampered log", async () => {
    const file = path.join(stateDir, "stacks", "local-staging", "audit.jsonl");
    const ls = readFileSync(file, "utf8").split("\n");
    ls[1] = ls[1].replace('"weights":{"blue":0,"green":100}', '"weights":{"blue":100,"green":0}');
    writeFileSync(file, ls.join("\n"));
    const result = await verify("local-staging");
    expect(result.code).to.equal(3);
    expect(result.stderr).to.match(/line 2: .*line 2 was changed/);
  });

  it("exits 2 for an AWS stack without --bucket", async () => {
    const result = await verify("production");
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include("--bucket");
  });
});
