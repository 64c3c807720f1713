// The edge runs the router code the program deployed, with the routing record the engine applied. One cloud;
// the steps run in order, each on the routing the previous one left (as a rollout raises weights).
import { expect } from "chai";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import type { Slot } from "../../infra/config";
import { BOTH_RELEASES, PREVIEW_TOKEN, RELEASE_DIR, RELEASES, bucketCookie, many, startTestCloud, weights, type TestCloud } from "./support";

const FRESH_VIEWERS = 2000;

describe("local cloud: routing through the edge", function () {
  let t: TestCloud;
  let returning: { cookie: string; slot: Slot; bucket: number }[] = [];

  before(async () => {
    t = await startTestCloud();
  });
  after(async () => {
    await t?.close();
  });

  const versionFile = (slot: Slot) => readFileSync(path.join(RELEASE_DIR, RELEASES[slot], "version.json"));

  async function greenShareOfFreshViewers(): Promise<number> {
    // A cacheable path: after the first miss per slot the edge answers from its cache, as CloudFront would.
    const slots = await many(FRESH_VIEWERS, 32, async () => {
      const res = await t.get("/version.json");
      expect(res.status).to.equal(200);
      const slot = res.headers["x-bluegreen-slot"] as Slot;
      // The body is the release the slot holds, as the header says.
      expect(res.body.equals(versionFile(slot))).to.equal(true);
      return slot;
    });
    return slots.filter((s) => s === "green").length / FRESH_VIEWERS;
  }

  for (const weight of [0, 10, 50]) {
    it(`sends ${weight}% (± 3 points) of ${FRESH_VIEWERS} fresh viewers to green when up sets its weight to ${weight}`, async () => {
      await t.deploy({ ...BOTH_RELEASES, ...weights(weight) }, `green at ${weight}%`);
      expect(Math.abs((await greenShareOfFreshViewers()) * 100 - weight)).to.be.at.most(3);
    });

    if (weight === 0) {
      it("routes the preview header to the idle slot, and ignores a wrong token", async () => {
        const right = await t.get("/version.json", { headers: { "x-bluegreen-preview": `${PREVIEW_TOKEN}:green` } });
        expect(right.headers["x-bluegreen-slot"]).to.equal("green");
        expect(JSON.parse(right.body.toString()).release).to.equal(RELEASES.green);
        const wrong = await t.get("/version.json", { headers: { "x-bluegreen-preview": "not-the-token-at-all-000:green" } });
        expect(wrong.status).to.equal(200);
        expect(wrong.headers["x-bluegreen-slot"]).to.equal("blue");
      });
    }

    if (weight === 10) {
      it("gives first-time viewers a bucket cookie that matches the slot they were sent to", async () => {
        returning = await many(300, 16, async () => {
          // The entry point answers with a redirect to the chosen release's URL, and the bucket cookie with it.
          const res = await t.get("/");
          expect(res.status).to.equal(302);
          const bucket = Number(bucketCookie(res));
          const slot = String(res.headers.location).split("/")[2] as Slot;
          expect(slot).to.equal(bucket < 10 ? "green" : "blue");
          return { cookie: `bg-bucket=${bucket}`, slot, bucket };
        });
        expect(returning.some((v) => v.slot === "green")).to.equal(true);
      });
    }

    if (weight === 50) {
      it("keeps a returning viewer on its slot when the weight rises from 10 to 50 (only buckets 10..49 move to green)", async () => {
        for (const viewer of returning) {
          const res = await t.get("/", { cookie: viewer.cookie });
          const expected = viewer.slot === "green" || viewer.bucket < 50 ? "green" : "blue";
          expect(res.headers.location, `viewer in bucket ${viewer.bucket}`).to.equal(`/_r/${expected}/${RELEASES[expected]}/`);
          // A returning viewer's cookie is left alone.
          expect(res.headers["set-cookie"]).to.equal(undefined);
        }
      });

      it("never serves one slot's bytes for the other's, though both hold different bytes at the same paths", async () => {
        // A release-qualified entry document ("/" names the page "index.html") and unqualified paths routed by the cookie.
        const paths = ["/", "/index.html", "/version.json"];
        const expected = (slot: Slot, p: string) => readFileSync(path.join(RELEASE_DIR, RELEASES[slot], p === "/" ? "index.html" : p.slice(1)));
        for (const p of paths) expect(expected("blue", p).equals(expected("green", p)), p).to.equal(false);
        const results = await many(800, 32, async (i) => {
          // Interleaved: alternate slots (by cookie) and paths, so cached entries of both slots are live at once.
          const bucket = i % 2 === 0 ? 10 : 90;
          const p = paths[Math.floor(i / 2) % paths.length];
          const slot: Slot = bucket < 50 ? "green" : "blue";
          const url = p === "/version.json" ? p : `/_r/${slot}/${RELEASES[slot]}${p}`;
          const res = await t.get(url, { cookie: `bg-bucket=${bucket}` });
          expect(res.status).to.equal(200);
          expect(res.headers["x-bluegreen-slot"]).to.equal(slot);
          expect(res.body.equals(expected(slot, p)), `${p} for a ${slot} viewer`).to.equal(true);
          return res.headers["x-cache"];
        });
        // The cache took part: the immutable-per-release objects were served from it.
        expect(results.filter((x) => x === "Hit from cloudfront").length).to.be.greaterThan(100);
      });
    }
  }

  for (const weight of [90, 100]) {
    it(`sends ${weight}% (± 3 points) of ${FRESH_VIEWERS} fresh viewers to green when up sets its weight to ${weight}`, async () => {
      await t.deploy({ ...BOTH_RELEASES, ...weights(weight) }, `green at ${weight}%`);
      expect(Math.abs((await greenShareOfFreshViewers()) * 100 - weight)).to.be.at.most(3);
    });
  }
});
