// The stack's lease and journal against an S3 that enforces conditional writes (the local cloud's S3 front, through
// @aws-sdk/client-s3): of racing takers exactly one wins, a heartbeat renews and sees an abort mark, a lease another
// process took is reported lost, and an expired lease with a journal goes to rollback only.
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { currentHolder, Lease, LeaseStore, leaseTtlMs, markAborted, type JournalEntry } from "../../automation/lease";
import { localS3Client, type LocalS3, startS3 } from "../../automation/local/s3";

const BUCKET = "audit-log-lease-test";

function journal(holder: ReturnType<typeof currentHolder>): JournalEntry {
  const snapshot = { "picasso-widget:stable": { value: "blue", secret: false } };
  return { stack: "dev", release: "2.0.0", candidate: "green", stable: "blue", phase: "shifting", step: 0, steps: [50, 100], weight: 50, baseVersion: 7, snapshot, secretKeys: [], holder, updatedAt: "" };
}

describe("the rollout lease and journal (S3 conditional writes)", function () {
  this.timeout(30_000);
  let dir: string;
  let server: LocalS3;
  let s3: S3Client;
  let n = 0;
  /** A fresh stack name per test: each gets its own lease object. */
  const store = () => new LeaseStore(s3, BUCKET, `dev${++n}`);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "bluegreen-lease-"));
    server = await startS3({ directory: dir });
    s3 = localS3Client(server.endpoint);
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });

  after(async () => {
    s3?.destroy();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lets exactly one of eight racing takers have a free lease; the others see it live and named", async () => {
    const lease = store();
    const holders = Array.from({ length: 8 }, (_, i) => ({ ...currentHolder(`deploy 1.0.${i}`), pid: 1000 + i }));
    const results = await Promise.all(holders.map((h) => Lease.acquire(lease, h, { ttlMs: 10_000 })));
    const won = results.filter((r) => r.ok);
    expect(won).to.have.length(1);
    const winner = won[0].ok ? won[0].lease.holder : undefined;
    for (const r of results.filter((x) => !x.ok)) expect(r.ok ? undefined : r.view).to.deep.include({ state: "live", holder: winner });
    if (won[0].ok) await won[0].lease.release();
    expect((await lease.view()).state).to.equal("free");
  });

  it("renews while the heartbeat runs, and lets the lease expire once it stops", async () => {
    const lease = store();
    const got = await Lease.acquire(lease, currentHolder("deploy 2.0.0"), { ttlMs: 1500 });
    if (!got.ok) throw new Error("not taken");
    got.lease.startHeartbeat(() => undefined, () => undefined);
    await sleep(2500);
    expect((await lease.view()).state, "renewed past its first expiry").to.equal("live");
    await got.lease.abandon();
    expect((await lease.view()).state, "abandoned: expired at once").to.equal("expired");
  });

  it("reports an abort mark to the holder's heartbeat, naming who aborted, and keeps the journal", async () => {
    const lease = store();
    const got = await Lease.acquire(lease, currentHolder("deploy 2.0.0"), { ttlMs: 10_000 });
    if (!got.ok) throw new Error("not taken");
    await got.lease.record(journal(got.lease.holder));
    const aborts: string[] = [];
    got.lease.startHeartbeat((by) => aborts.push(by), () => undefined);
    const by = { ...currentHolder("abort"), user: "alice", pid: 4242 };
    const marked = await markAborted(lease, by);
    expect(marked).to.deep.include({ ok: true });
    for (let i = 0; i < 40 && aborts.length === 0; i++) await sleep(50);
    expect(aborts).to.have.length(1);
    expect(aborts[0]).to.match(/^alice@\S+ pid 4242 \(abort, since /);
    // The revert's journal write lands on the marked object (If-Match with the ETag it now reads).
    await got.lease.record({ ...journal(got.lease.holder), phase: "reverting" });
    const view = await lease.view();
    expect(view.state === "live" && view.journal?.phase).to.equal("reverting");
    expect(view.state === "live" && view.abort?.by).to.equal(aborts[0]);
    await got.lease.release();
  });

  it("gives an expired lease with a journal to rollback only, and reports the loss to the old holder", async () => {
    const lease = store();
    const first = await Lease.acquire(lease, currentHolder("deploy 2.0.0"), { ttlMs: 300 });
    if (!first.ok) throw new Error("not taken");
    await first.lease.record(journal(first.lease.holder));
    await sleep(500);
    const deploy = await Lease.acquire(lease, currentHolder("deploy 3.0.0"), { ttlMs: 10_000 });
    expect(deploy.ok ? "taken" : deploy.view.state).to.equal("expired");
    const rollback = await Lease.acquire(lease, currentHolder("rollback"), { ttlMs: 10_000, finishJournal: true });
    if (!rollback.ok) throw new Error(`rollback did not take the expired lease: ${JSON.stringify(rollback.view)} at ${new Date().toISOString()}`);
    expect(rollback.journal).to.deep.include({ release: "2.0.0", phase: "shifting", baseVersion: 7 });
    expect(rollback.tookOver?.holder.command).to.equal("deploy 2.0.0");
    // The old holder's next write is refused; its heartbeat reports the lease lost to the rollback.
    const lost: string[] = [];
    first.lease.startHeartbeat(() => undefined, (by) => lost.push(by));
    for (let i = 0; i < 40 && lost.length === 0; i++) await sleep(50);
    expect(lost[0]).to.match(/pid \d+ \(rollback, since /);
    let refused: unknown;
    await first.lease.record(journal(first.lease.holder)).catch((err: unknown) => (refused = err));
    expect(String(refused)).to.match(/the stack's lease was taken by .*\(rollback/);
    await first.lease.release();
    await rollback.lease.release();
    expect((await lease.view()).state).to.equal("free");
  });

  it("takes over an expired lease without a journal", async () => {
    const lease = store();
    const first = await Lease.acquire(lease, currentHolder("deploy 2.0.0"), { ttlMs: 200 });
    if (!first.ok) throw new Error("not taken");
    await sleep(400);
    const next = await Lease.acquire(lease, currentHolder("deploy 3.0.0"), { ttlMs: 10_000 });
    if (!next.ok) throw new Error("not taken over");
    expect(next.tookOver?.holder.command).to.equal("deploy 2.0.0");
    expect(next.journal).to.equal(undefined);
    await next.lease.release();
  });

  it("reads $BLUEGREEN_LEASE_SECONDS, refusing a value that is not 2 to 3600 whole seconds", () => {
    expect(leaseTtlMs({})).to.equal(30_000);
    expect(leaseTtlMs({ BLUEGREEN_LEASE_SECONDS: "5" })).to.equal(5000);
    for (const bad of ["1", "0.5", "abc", "3601"]) {
      expect(() => leaseTtlMs({ BLUEGREEN_LEASE_SECONDS: bad })).to.throw(`BLUEGREEN_LEASE_SECONDS = "${bad}": expected a whole number of seconds from 2 to 3600`);
    }
  });

  it("builds the holder's CI run URL from GitHub's variables", () => {
    const h = currentHolder("deploy 2.0.0", { GITHUB_SERVER_URL: "https://github.com", GITHUB_REPOSITORY: "acme/widget", GITHUB_RUN_ID: "123" });
    expect(h.runUrl).to.equal("https://github.com/acme/widget/actions/runs/123");
    expect(currentHolder("deploy", {}).runUrl).to.equal(undefined);
  });
});
