// The router acceptance: the exact bytes the program deploys (infra/routerCode.ts), run in the CloudFront
// Functions runtime shim, against routing records shaped by infra/routing.ts.
import { expect } from "chai";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import {
  compileCloudFrontFunction,
  isResponse,
  newRequestId,
  viewerRequestEvent,
  viewerResponseEvent,
  type CloudFrontFunction,
  type CloudFrontRequest,
  type CloudFrontResponse,
  type FieldMap,
  type KeyValueLookup,
  type ViewerRequestInput,
} from "../../automation/local/cloudfrontRuntime";
import type { Slot } from "../../infra/config";
import { MAX_FUNCTION_CODE_BYTES, viewerRequestCode, viewerResponseCode, type Fallback } from "../../infra/routerCode";
import { decodeRoutingRecord, encodeRoutingRecord, ROUTING_KEY, ROUTING_RECORD_PATTERN, sha256Hex, type RoutingRecord } from "../../infra/routing";

const PREVIEW_TOKEN = "test-preview-token:with-a-colon";
const RELEASES = { blue: "r1", green: "r2" };

function record(stable: Slot, newWeight: number, overrides: Partial<RoutingRecord> = {}): RoutingRecord {
  const next: Slot = stable === "blue" ? "green" : "blue";
  return {
    rev: 1,
    stable,
    weights: { [stable]: 100 - newWeight, [next]: newWeight } as Record<Slot, number>,
    releases: { ...RELEASES },
    preview: sha256Hex(PREVIEW_TOKEN),
    ...overrides,
  };
}

/** An edge in miniature: the deployed router pair, a KVS whose routing value the test rewrites, an "origin" that echoes object metadata. */
class Router {
  routing: string | undefined;
  store: KeyValueLookup | undefined = (key) => (key === ROUTING_KEY ? this.routing : undefined);
  private readonly viewerRequest: CloudFrontFunction;
  private readonly viewerResponse = compileCloudFrontFunction(viewerResponseCode(), { filename: "viewer-response.js" });

  constructor(fallback: Fallback, initial?: RoutingRecord) {
    this.viewerRequest = compileCloudFrontFunction(viewerRequestCode(fallback), { kvs: () => this.store, filename: "viewer-request.js" });
    this.routing = initial && encodeRoutingRecord(initial);
  }

  setRecord(value: RoutingRecord): void {
    this.routing = encodeRoutingRecord(value);
  }

  async request(input: ViewerRequestInput) {
    return this.viewerRequest.run(viewerRequestEvent(input));
  }

  /** One full visit: viewer-request, the origin answering with the object's metadata, viewer-response. */
  async visit(input: ViewerRequestInput): Promise<{ slot?: string; forwarded?: CloudFrontRequest; response: CloudFrontResponse }> {
    const viewer = { ...input, requestId: input.requestId ?? newRequestId() };
    const { output, originId } = await this.viewerRequest.run(viewerRequestEvent(viewer));
    if (isResponse(output)) return { response: output };
    const [, slot, release] = output.uri.split("/");
    const origin = {
      statusCode: 200,
      headers: { "content-type": { value: "text/html" }, "x-amz-meta-slot": { value: slot }, "x-amz-meta-release": { value: release } },
    };
    const responded = await this.viewerResponse.run(viewerResponseEvent(viewer, origin));
    return { slot: originId, forwarded: output, response: responded.output as CloudFrontResponse };
  }
}

function bucketCookie(response: CloudFrontResponse): FieldMap {
  const cookie = response.cookies["bg-bucket"];
  expect(cookie, "bg-bucket cookie").to.not.equal(undefined);
  return { "bg-bucket": { value: cookie.value } };
}

describe("router (viewer-request + viewer-response functions)", () => {
  describe("first-time viewers", () => {
    for (const weight of [0, 10, 25, 50, 75, 100]) {
      it(`sends ${weight}% of 10,000 first-time viewers to green (within 2 points) when blue is stable`, async () => {
        const router = new Router({ slot: "blue", release: "r1" }, record("blue", weight));
        let green = 0;
        for (let i = 0; i < 10_000; i++) {
          const { originId } = await router.request({ uri: "/", requestId: newRequestId() });
          if (originId === "green") green++;
          else expect(originId).to.equal("blue");
        }
        const share = green / 100;
        if (weight === 0 || weight === 100) expect(share).to.equal(weight);
        else expect(Math.abs(share - weight), `green share ${share}%`).to.be.at.most(2);
      });
    }
  });

  describe("returning viewers", () => {
    for (const stable of ["blue", "green"] as const) {
      const next: Slot = stable === "blue" ? "green" : "blue";
      it(`keeps each viewer's slot while ${next}'s weight rises 10→100 with ${stable} stable, moving only ${stable}→${next}`, async () => {
        const router = new Router({ slot: stable, release: RELEASES[stable] }, record(stable, 10));
        const viewers: { cookies: FieldMap; slots: string[] }[] = [];
        for (let i = 0; i < 2_000; i++) {
          const first = await router.visit({ uri: "/" });
          viewers.push({ cookies: bucketCookie(first.response), slots: [first.slot!] });
        }
        for (const weight of [10, 25, 50, 75, 100]) {
          router.setRecord(record(stable, weight));
          for (const viewer of viewers) {
            const again = await router.visit({ uri: "/", cookies: viewer.cookies });
            expect(again.response.cookies, "a returning viewer gets no new cookie").to.deep.equal({});
            viewer.slots.push(again.slot!);
          }
        }
        for (const { cookies, slots } of viewers) {
          const bucket = Number(cookies["bg-bucket"].value);
          // The first visit (before any cookie) and the cookie-driven visit at the same weight agree.
          expect(slots[0], `bucket ${bucket}`).to.equal(slots[1]);
          const firstNew = slots.indexOf(next);
          if (firstNew >= 0) expect(slots.slice(firstNew), `bucket ${bucket}: ${slots.join(",")}`).to.not.include(stable);
          expect(slots[slots.length - 1]).to.equal(next);
        }
        const onNewAtTen = viewers.filter((v) => v.slots[0] === next).length / viewers.length;
        expect(onNewAtTen, "share on the new slot at weight 10").to.be.within(0.06, 0.14);
      });
    }

    it("treats an invalid bg-bucket cookie as absent", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 50));
      for (const value of ["abc", "100", "-1", "", "4.5"]) {
        for (let i = 0; i < 20; i++) {
          const requestId = newRequestId();
          const withCookie = await router.visit({ uri: "/", requestId, cookies: { "bg-bucket": { value } } });
          const without = await router.visit({ uri: "/", requestId });
          expect(withCookie.slot, `bg-bucket=${value}`).to.equal(without.slot);
          expect(withCookie.response.cookies["bg-bucket"], `bg-bucket=${value} is replaced`).to.deep.equal(without.response.cookies["bg-bucket"]);
        }
      }
    });
  });

  describe("preview route", () => {
    it("routes the right token to the named slot even at weight 0, without forwarding the header", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      const headers = { "x-bluegreen-preview": { value: `${PREVIEW_TOKEN}:green` }, accept: { value: "*/*" } };
      const { slot, forwarded } = await router.visit({ uri: "/", headers });
      expect(slot).to.equal("green");
      expect(forwarded!.uri).to.equal("/green/r2/index.html");
      expect(forwarded!.headers).to.deep.equal({ accept: { value: "*/*" } });
    });

    it("ignores a wrong token and still strips the header", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      for (const value of ["wrong-token:green", `${PREVIEW_TOKEN}x:green`, "green", `:green`, `${PREVIEW_TOKEN}:purple`]) {
        const { slot, forwarded } = await router.visit({ uri: "/", headers: { "x-bluegreen-preview": { value } } });
        expect(slot, value).to.equal("blue");
        expect(forwarded!.headers, value).to.deep.equal({});
      }
    });

    it("ignores even the right token when the record's preview hash is empty", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0, { preview: "" }));
      const { slot } = await router.visit({ uri: "/", headers: { "x-bluegreen-preview": { value: `${PREVIEW_TOKEN}:green` } } });
      expect(slot).to.equal("blue");
    });
  });

  describe("KVS failure", () => {
    const fallback: Fallback = { slot: "green", release: "r9" };
    const failures: [string, (router: Router) => void][] = [
      ["no store is associated", (router) => (router.store = undefined)],
      ["the routing key is missing", (router) => (router.routing = undefined)],
      ["the value is not a routing record", (router) => (router.routing = '{"rev":1,"stable":"blue"}')],
      ["the value has a field too few", (router) => (router.routing = encodeRoutingRecord(record("blue", 50)).replace(/ preview=.*$/, ""))],
      ["a field is out of order", (router) => (router.routing = "stable=blue rev=1 weight.blue=50 weight.green=50 release.blue=r1 release.green=r2 preview=")],
      ["the stable slot is not blue or green", (router) => (router.routing = encodeRoutingRecord(record("blue", 50)).replace("stable=blue", "stable=red"))],
      ["a release has a character no release id has", (router) => (router.routing = encodeRoutingRecord(record("blue", 50)).replace("release.blue=r1", "release.blue=r/1"))],
      [
        "the store read fails",
        (router) =>
          (router.store = () => {
            throw new Error("throttled");
          }),
      ],
    ];
    for (const [what, breakIt] of failures) {
      it(`serves the baked fallback slot and release when ${what}`, async () => {
        const router = new Router(fallback, record("blue", 50));
        breakIt(router);
        for (let i = 0; i < 20; i++) {
          const { slot, forwarded } = await router.visit({ uri: "/docs/" });
          expect(slot).to.equal("green");
          expect(forwarded!.uri).to.equal("/green/r9/docs/index.html");
        }
      });
    }
  });

  describe("routing revision path", () => {
    it("answers /.bluegreen/routing with the record's rev as a JSON number, and -1 when it reads no record", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 50, { rev: 42 }));
      const body = async () => {
        const { output } = await router.request({ uri: "/.bluegreen/routing" });
        return isResponse(output) ? output.body : undefined;
      };
      expect(await body()).to.deep.equal({ encoding: "text", data: '{"rev":42}' });
      router.routing = undefined;
      expect(await body()).to.deep.equal({ encoding: "text", data: '{"rev":-1}' });
    });
  });

  describe("request rewriting", () => {
    it("prefixes the URI with /<slot>/<release> and serves index.html for / and trailing-slash paths", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 100));
      const cases: [string, string][] = [
        ["/", "/green/r2/index.html"],
        ["/docs/", "/green/r2/docs/index.html"],
        ["/docs", "/green/r2/docs"],
        ["/assets/app.3f9a.js", "/green/r2/assets/app.3f9a.js"],
        ["/version.json", "/green/r2/version.json"],
      ];
      for (const [uri, rewritten] of cases) {
        const { forwarded } = await router.visit({ uri });
        expect(forwarded!.uri, uri).to.equal(rewritten);
      }
    });

    it("passes the method, other headers, cookies and the query string through unchanged", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      const headers = {
        "user-agent": { value: "probe/1.0" },
        accept: { value: "text/html", multiValue: [{ value: "text/html" }, { value: "*/*" }] },
      };
      const cookies = { session: { value: "abc" }, "bg-bucket": { value: "42" } };
      const querystring = { q: { value: "a%20b" }, tag: { value: "x", multiValue: [{ value: "x" }, { value: "y" }] } };
      const { forwarded } = await router.visit({ method: "HEAD", uri: "/index.html", headers, cookies, querystring });
      expect(forwarded).to.deep.equal({ method: "HEAD", uri: "/blue/r1/index.html", headers, cookies, querystring });
    });

    it("answers 503 itself when the chosen slot has no release", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 100, { releases: { blue: "r1", green: "" } }));
      const { output, originId } = await router.request({ uri: "/" });
      expect(output).to.deep.include({ statusCode: 503 });
      expect(originId).to.equal(undefined);
    });

    it("answers 503 when the KVS fails and the baked fallback has no release", async () => {
      const router = new Router({ slot: "blue", release: "" });
      const { output } = await router.request({ uri: "/" });
      expect(output).to.deep.include({ statusCode: 503 });
    });
  });

  describe("viewer-response", () => {
    it("renames the object metadata headers and sets the bucket cookie for a first-time viewer", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      const { response } = await router.visit({ uri: "/" });
      expect(response.headers).to.deep.equal({
        "content-type": { value: "text/html" },
        "x-bluegreen-slot": { value: "blue" },
        "x-bluegreen-release": { value: "r1" },
      });
      expect(response.cookies["bg-bucket"].attributes).to.equal("Path=/; Max-Age=86400; Secure; SameSite=Lax");
      expect(response.cookies["bg-bucket"].value).to.match(/^[0-9]{1,2}$/);
    });

    it("sets no cookie for a viewer that already has a valid bucket", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      for (const value of ["0", "7", "99"]) {
        const { response } = await router.visit({ uri: "/", cookies: { "bg-bucket": { value } } });
        expect(response.cookies, value).to.deep.equal({});
        expect(response.headers["x-bluegreen-slot"]).to.deep.equal({ value: "blue" });
      }
    });
  });

  describe("routing record", () => {
    it("round-trips through encodeRoutingRecord and decodeRoutingRecord, empty values included", () => {
      for (const r of [record("blue", 25), record("green", 100, { releases: { blue: "", green: "2.0.0-rc.1" }, preview: "" })]) {
        expect(decodeRoutingRecord(encodeRoutingRecord(r))).to.deep.equal(r);
      }
      expect(encodeRoutingRecord(record("blue", 25))).to.equal(
        `rev=1 stable=blue weight.blue=75 weight.green=25 release.blue=r1 release.green=r2 preview=${sha256Hex(PREVIEW_TOKEN)}`,
      );
    });

    it("matches the record with the same pattern in the deployed function and in infra/routing.ts", () => {
      const source = readFileSync(path.join(__dirname, "../../infra/router/viewer-request.js"), "utf8");
      expect(source).to.include(`const RECORD = ${ROUTING_RECORD_PATTERN.toString()};`);
    });

    it("refuses to encode a value with whitespace, and decodes nothing that is not a record", () => {
      expect(() => encodeRoutingRecord(record("blue", 0, { releases: { blue: "r 1", green: "r2" } }))).to.throw(/"r 1" contains whitespace/);
      for (const text of ["", "{}", "rev=1", encodeRoutingRecord(record("blue", 0)).replace("stable=blue", "stable=red")]) {
        expect(decodeRoutingRecord(text), text).to.equal(undefined);
      }
    });
  });

  describe("size", () => {
    it("keeps each rendered function under the 10 KB CloudFront Functions limit", () => {
      // The longest fallback line the program can bake: a release id at its longest plausible length.
      const request = Buffer.byteLength(viewerRequestCode({ slot: "green", release: "r".repeat(64) }), "utf8");
      const response = Buffer.byteLength(viewerResponseCode(), "utf8");
      expect(request).to.be.below(MAX_FUNCTION_CODE_BYTES);
      expect(response).to.be.below(MAX_FUNCTION_CODE_BYTES);
    });
  });
});
