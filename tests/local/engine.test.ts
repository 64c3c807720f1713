// The emulated engine and the edge's fault injection, against a running local cloud in a temp folder.
import { expect } from "chai";
import type { Slot } from "../../infra/config";
import { main } from "../../automation/cli";
import { FaultStore } from "../../automation/local/faults";
import { BOTH_RELEASES, many, startTestCloud, weights, type TestCloud } from "./support";

// Cookies that pin a returning viewer to a slot while the weights are 50/50 (green when bucket < 50).
const VIEWER: Record<Slot, string> = { green: "bg-bucket=10", blue: "bg-bucket=90" };

describe("local cloud: engine and faults", function () {
  let t: TestCloud;

  before(async () => {
    t = await startTestCloud();
    await t.deploy({ ...BOTH_RELEASES, ...weights(50) }, "green at 50%");
  });
  afterEach(() => t?.cloud.clearFaults("local"));
  after(async () => {
    await t?.close();
  });

  const errorShare = async (slot: Slot, n: number) => {
    const responses = await many(n, 32, () => t.get("/version.json", { cookie: VIEWER[slot] }));
    return responses.filter((r) => r.status >= 500).length / n;
  };

  it("answers 30% ± 5 of green's requests with errors at an injected 30% error rate, and none of blue's", async () => {
    t.cloud.setFault("local", "green", { errorRate: 0.3, latencyMs: 0 });
    expect(await errorShare("green", 1000)).to.be.within(0.25, 0.35);
    expect(await errorShare("blue", 1000)).to.equal(0);
  });

  it("adds an injected latency to the slot's measured latency only", async () => {
    t.cloud.setFault("local", "green", { errorRate: 0, latencyMs: 150 });
    const median = async (slot: Slot) => {
      const ms = (await many(40, 8, () => t.get("/version.json", { cookie: VIEWER[slot] }))).map((r) => r.ms).sort((a, b) => a - b);
      return ms[ms.length >> 1];
    };
    expect(await median("green")).to.be.at.least(150);
    expect(await median("blue")).to.be.below(100);
  });

  it("takes faults set by another process: through the state folder and through the edge's admin endpoint", async () => {
    // A second FaultStore on the same folder is what `bluegreen local fault` in another process uses.
    new FaultStore(t.cloud.stateDir).setSlotFault("local", "blue", { errorRate: 1, latencyMs: 0 });
    expect((await t.get("/version.json", { cookie: VIEWER.blue })).status).to.equal(503);
    const res = await fetch(`${t.cloud.url}/_bluegreen/faults`, { method: "POST", body: JSON.stringify({ stack: "local", clear: true }) });
    expect(res.status).to.equal(200);
    expect((await t.get("/version.json", { cookie: VIEWER.blue })).status).to.equal(200);
    const bad = await fetch(`${t.cloud.url}/_bluegreen/faults`, { method: "POST", body: JSON.stringify({ stack: "local", slot: "green", errorRate: 2 }) });
    expect(bad.status).to.equal(400);
    expect(await bad.text()).to.contain("error-rate = 2: expected a number from 0 to 1");
  });

  it("rejects a bad `bluegreen local fault` with exit code 2, naming the field, the value and what is allowed", async () => {
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => stderr.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      expect(await main(["local", "fault", "--slot", "purple", "--error-rate", "0.1"])).to.equal(2);
      expect(await main(["local", "fault", "--slot", "green", "--error-rate", "1.5"])).to.equal(2);
      expect(await main(["local", "fault", "--slot", "green", "--latency-ms", "90000"])).to.equal(2);
    } finally {
      process.stderr.write = write;
    }
    expect(stderr.join("")).to.contain('--slot = "purple": expected blue or green');
    expect(stderr.join("")).to.contain("--error-rate = 1.5: expected a number from 0 to 1");
    expect(stderr.join("")).to.contain("--latency-ms = 90000: expected an integer from 0 to 60000");
  });

  it("appends a succeeded history entry carrying the config of an up after a config change", async () => {
    const before = await t.stack.history();
    await t.deploy({ ...BOTH_RELEASES, ...weights(60) }, "green at 60%");
    const [latest, ...rest] = await t.stack.history();
    expect(rest.length).to.equal(before.length);
    expect(latest).to.include({ kind: "update", result: "succeeded", message: "green at 60%", version: before[0].version + 1 });
    expect(JSON.parse(latest.config["picasso-widget:weights"].value)).to.deep.equal({ blue: 40, green: 60 });
    expect(latest.config["picasso-widget:weights"].secret).to.equal(false);
    expect(latest.startTime).to.be.instanceOf(Date);
    expect(latest.endTime.getTime()).to.be.at.least(latest.startTime.getTime());
    expect(await t.stack.history(1, 2)).to.deep.equal([rest[0]]);
  });

  it("records an injected up failure as a failed entry, and the edge keeps serving the previous routing", async () => {
    // At 60% green, bucket 55 is green; the failed up would have sent it back to blue.
    expect((await t.get("/version.json", { cookie: "bg-bucket=55" })).headers["x-bluegreen-slot"]).to.equal("green");
    t.cloud.failUps("local", { skip: 0, fail: 1 });
    let failure: unknown;
    await t.deploy({ ...BOTH_RELEASES, ...weights(20) }, "green at 20%").catch((err: unknown) => (failure = err));
    expect((failure as Error).message).to.contain("injected up failure");
    const [latest] = await t.stack.history();
    expect(latest).to.include({ result: "failed", message: "green at 20%" });
    expect(JSON.parse(latest.config["picasso-widget:weights"].value)).to.deep.equal({ blue: 80, green: 20 });
    expect((await t.get("/version.json", { cookie: "bg-bucket=55" })).headers["x-bluegreen-slot"]).to.equal("green");
    expect((await t.stack.outputs()).edgeUrl.value).to.equal(t.cloud.url);
  });

  it("fails an up whose routing revision is older than the deployed one, naming both and the fix", async () => {
    await t.stack.setAllConfig({ "picasso-widget:revision": { value: "1" } });
    let failure: unknown;
    await t.stack.up({ message: "stale stack file" }).catch((err: unknown) => (failure = err));
    expect((failure as Error).message).to.match(/revision = 1 is older than the deployed routing revision \d+.*pulumi config refresh --stack local/);
    expect((await t.stack.history(1))[0]).to.include({ result: "failed", message: "stale stack file" });
  });

  it("refreshes the config from the most recent update, as `pulumi config refresh` does", async () => {
    const [latest] = await t.stack.history();
    await t.stack.removeConfig("weights");
    expect(await t.stack.refreshConfig()).to.deep.equal(latest.config);
    expect(await t.stack.getAllConfig()).to.deep.equal(latest.config);
  });

  it("keeps the preview token's secret flag and hides its value when asked to", async () => {
    await t.stack.setAllConfig({ "picasso-widget:previewToken": { value: "local-preview-token-0123456789", secret: true } });
    await t.deploy({ ...BOTH_RELEASES, ...weights(60) }, "secret token");
    const [shown] = await t.stack.history(1, 1, true);
    const [hidden] = await t.stack.history(1, 1, false);
    expect(shown.config["picasso-widget:previewToken"]).to.deep.equal({ value: "local-preview-token-0123456789", secret: true });
    // pkg/cmd/pulumi/stack/stack_history.go leaves a secret's value out without --show-secrets.
    expect(hidden.config["picasso-widget:previewToken"]).to.deep.equal({ secret: true });
  });

  it("refuses nested config paths and unknown stack names with clear errors", async () => {
    let failure: unknown;
    await t.stack.setAllConfig({}, true).catch((err: unknown) => (failure = err));
    expect((failure as Error).message).to.contain("does not support --path");
    failure = undefined;
    await t.cloud.stack("prod").catch((err: unknown) => (failure = err));
    expect((failure as Error).name).to.equal("StackNotFoundError");
  });
});
