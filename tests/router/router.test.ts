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
import { embeddingSchema, viewerSettings, type Slot } from "../../infra/config";
import { MAX_FUNCTION_CODE_BYTES, viewerRequestCode, viewerResponseCode, type Fallback, type ViewerSettings } from "../../infra/routerCode";
import { decodeRoutingRecord, encodeRoutingRecord, ROUTING_KEY, ROUTING_RECORD_PATTERN, sha256Hex, type RoutingRecord } from "../../infra/routing";

const PREVIEW_TOKEN = "test-preview-token:with-a-colon";
const RELEASES = { blue: "r1", green: "r2" };
const VIEWER: ViewerSettings = viewerSettings(embeddingSchema.parse({}));

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
  private readonly viewerResponse: CloudFrontFunction;

  constructor(fallback: Fallback, initial?: RoutingRecord, viewer: ViewerSettings = VIEWER) {
    this.viewerRequest = compileCloudFrontFunction(viewerRequestCode(fallback, viewer), { kvs: () => this.store, filename: "viewer-request.js" });
    this.viewerResponse = compileCloudFrontFunction(viewerResponseCode(viewer), { filename: "viewer-response.js" });
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
          const { originId } = await router.request({ uri: "/version.json", requestId: newRequestId() });
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
          const first = await router.visit({ uri: "/version.json" });
          viewers.push({ cookies: bucketCookie(first.response), slots: [first.slot!] });
        }
        for (const weight of [10, 25, 50, 75, 100]) {
          router.setRecord(record(stable, weight));
          for (const viewer of viewers) {
            const again = await router.visit({ uri: "/version.json", cookies: viewer.cookies });
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
          const withCookie = await router.visit({ uri: "/version.json", requestId, cookies: { "bg-bucket": { value } } });
          const without = await router.visit({ uri: "/version.json", requestId });
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
      const { slot, forwarded } = await router.visit({ uri: "/version.json", headers });
      expect(slot).to.equal("green");
      expect(forwarded!.uri).to.equal("/green/r2/version.json");
      expect(forwarded!.headers).to.deep.equal({ accept: { value: "*/*" } });
    });

    it("ignores a wrong token and still strips the header", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      for (const value of ["wrong-token:green", `${PREVIEW_TOKEN}x:green`, "green", `:green`, `${PREVIEW_TOKEN}:purple`]) {
        const { slot, forwarded } = await router.visit({ uri: "/version.json", headers: { "x-bluegreen-preview": { value } } });
        expect(slot, value).to.equal("blue");
        expect(forwarded!.headers, value).to.deep.equal({});
      }
    });

    it("ignores even the right token when the record's preview hash is empty", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0, { preview: "" }));
      const { slot } = await router.visit({ uri: "/version.json", headers: { "x-bluegreen-preview": { value: `${PREVIEW_TOKEN}:green` } } });
      expect(slot).to.equal("blue");
    });
  });

  describe("skew protection: a page and its assets from one release", () => {
    const host = { host: { value: "d111.cloudfront.net" } };

    /** A cookieless page load: the entry point, then its assets resolved against the redirect's URL as a browser does. */
    async function pageLoad(router: Router, refs: string[]): Promise<{ location: string; served: string[] }> {
      const entry = await router.request({ uri: "/", headers: host });
      expect(isResponse(entry.output), "the entry point answers itself").to.equal(true);
      const response = entry.output as CloudFrontResponse;
      expect(response.statusCode).to.equal(302);
      const location = response.headers.location.value;
      const page = new URL(location, "https://d111.cloudfront.net");
      const served: string[] = [];
      for (const ref of [page.pathname, ...refs]) {
        const url = new URL(ref, page);
        const { forwarded, slot } = await router.visit({ uri: url.pathname, headers: { ...host, referer: { value: page.href } } });
        served.push(`${slot} ${forwarded!.uri}`);
      }
      return { location, served };
    }

    it("redirects every cookieless page load to one release-qualified URL whose assets all come from that slot and release, at each weight", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      // Relative, dot-relative, a lazy chunk, the page's own fetch("version.json"), and a path-absolute reference.
      const refs = ["assets/app.3f9a.js", "./assets/app.css", "assets/chunk.51c2.js", "version.json", "/assets/font.woff2"];
      for (const weight of [0, 10, 25, 50, 75, 100]) {
        router.setRecord(record("blue", weight));
        const seen = new Set<string>();
        for (let i = 0; i < 200; i++) {
          const { location, served } = await pageLoad(router, refs);
          const [, , slot, release] = location.split("/");
          seen.add(slot);
          expect(served, location).to.deep.equal([
            `${slot} /${slot}/${release}/index.html`,
            ...["assets/app.3f9a.js", "assets/app.css", "assets/chunk.51c2.js", "version.json", "assets/font.woff2"].map((f) => `${slot} /${slot}/${release}/${f}`),
          ]);
          expect(release).to.equal(RELEASES[slot as Slot]);
        }
        if (weight === 0) expect([...seen]).to.deep.equal(["blue"]);
        else if (weight === 100) expect([...seen]).to.deep.equal(["green"]);
        else expect([...seen].sort(), `weight ${weight}`).to.deep.equal(["blue", "green"]);
      }
    });

    it("serves a release-qualified URL from its slot and release whatever the record says, and without reading it", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 100));
      // The page was opened on r0 two rollouts ago; blue now holds r3, green r2, and the store cannot be read at all.
      router.setRecord(record("green", 0, { releases: { blue: "r3", green: "r2" } }));
      router.store = () => {
        throw new Error("the page's assets must not depend on the routing record");
      };
      const { slot, forwarded, response } = await router.visit({ uri: "/_r/blue/r0/assets/chunk.51c2.js" });
      expect(slot).to.equal("blue");
      expect(forwarded!.uri).to.equal("/blue/r0/assets/chunk.51c2.js");
      expect(response.headers["cache-control"]).to.deep.equal({ value: "public, max-age=31536000, immutable" });
      expect(response.cookies, "a qualified URL is not routed by weight: no bucket").to.deep.equal({});
    });

    it("redirects an entry point with its query string, the entry Cache-Control and, for a first-time viewer only, the bucket its next visit routes by", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 50));
      const querystring = { theme: { value: "dark" }, tag: { value: "a", multiValue: [{ value: "a" }, { value: "b%20c" }] }, flag: { value: "" } };
      for (let i = 0; i < 100; i++) {
        const first = (await router.request({ uri: "/docs/page.html", querystring })).output as CloudFrontResponse;
        const [, , slot, release] = first.headers.location.value.split("/");
        expect(first.headers.location.value).to.equal(`/_r/${slot}/${release}/docs/page.html?theme=dark&tag=a&tag=b%20c&flag`);
        expect(first.headers["cache-control"]).to.deep.equal({ value: "private, no-cache" });
        const cookies = bucketCookie(first);
        expect(first.cookies["bg-bucket"].attributes).to.equal(VIEWER.cookie);
        const again = (await router.request({ uri: "/", cookies })).output as CloudFrontResponse;
        expect(again.headers.location.value, "the returning viewer's slot").to.equal(`/_r/${slot}/${release}/`);
        expect(again.cookies, "a returning viewer gets no new cookie").to.deep.equal({});
      }
    });

    it("redirects an entry point with the preview token to the named slot, even at weight 0", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      const { output } = await router.request({ uri: "/", headers: { "x-bluegreen-preview": { value: `${PREVIEW_TOKEN}:green` } } });
      expect((output as CloudFrontResponse).headers.location.value).to.equal("/_r/green/r2/");
    });

    it("ignores a Referer from another host or an unqualified page", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      for (const referer of ["https://customer.example/_r/green/r2/", "https://d111.cloudfront.net/", "https://d111.cloudfront.net/_r/purple/r2/"]) {
        const { forwarded } = await router.visit({ uri: "/assets/font.woff2", headers: { ...host, referer: { value: referer } } });
        expect(forwarded!.uri, referer).to.equal("/blue/r1/assets/font.woff2");
      }
    });

    it("bakes the stack's embedding settings into both functions", async () => {
      const viewer = viewerSettings(embeddingSchema.parse({ cookieSameSite: "Lax", cookiePartitioned: false, entryMaxAgeSeconds: 30 }));
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0), viewer);
      const entry = (await router.request({ uri: "/" })).output as CloudFrontResponse;
      expect(entry.headers["cache-control"]).to.deep.equal({ value: "private, max-age=30" });
      expect(entry.cookies["bg-bucket"].attributes).to.equal("Path=/; Max-Age=86400; Secure; SameSite=Lax");
      const { response } = await router.visit({ uri: "/version.json" });
      expect(response.headers["cache-control"]).to.deep.equal({ value: "private, max-age=30" });
      expect(response.cookies["bg-bucket"].attributes).to.equal("Path=/; Max-Age=86400; Secure; SameSite=Lax");
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
          const { slot, forwarded } = await router.visit({ uri: "/docs/app.js" });
          expect(slot).to.equal("green");
          expect(forwarded!.uri).to.equal("/green/r9/docs/app.js");
          expect((await router.request({ uri: "/docs/" })).output).to.deep.include({ statusCode: 302 });
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
    it("prefixes the URI with /<slot>/<release>, and serves index.html for release-qualified trailing-slash paths", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 100));
      const cases: [string, string][] = [
        ["/docs", "/green/r2/docs"],
        ["/assets/app.3f9a.js", "/green/r2/assets/app.3f9a.js"],
        ["/version.json", "/green/r2/version.json"],
        ["/_r/blue/r0/", "/blue/r0/index.html"],
        ["/_r/green/r2/docs/", "/green/r2/docs/index.html"],
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
      const { forwarded } = await router.visit({ method: "HEAD", uri: "/_r/blue/r1/index.html", headers, cookies, querystring });
      expect(forwarded).to.deep.equal({ method: "HEAD", uri: "/blue/r1/index.html", headers, cookies, querystring });
    });

    it("answers 503 itself when the chosen slot has no release", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 100, { releases: { blue: "r1", green: "" } }));
      for (const uri of ["/", "/version.json"]) {
        const { output, originId } = await router.request({ uri });
        expect(output, uri).to.deep.include({ statusCode: 503 });
        expect(originId).to.equal(undefined);
      }
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
      const { response } = await router.visit({ uri: "/version.json" });
      expect(response.headers).to.deep.equal({
        "cache-control": { value: "private, no-cache" },
        "content-type": { value: "text/html" },
        "x-bluegreen-slot": { value: "blue" },
        "x-bluegreen-release": { value: "r1" },
      });
      expect(response.cookies["bg-bucket"].attributes).to.equal("Path=/; Max-Age=86400; Secure; SameSite=None; Partitioned");
      expect(response.cookies["bg-bucket"].value).to.match(/^[0-9]{1,2}$/);
    });

    it("sets no cookie for a viewer that already has a valid bucket", async () => {
      const router = new Router({ slot: "blue", release: "r1" }, record("blue", 0));
      for (const value of ["0", "7", "99"]) {
        const { response } = await router.visit({ uri: "/version.json", cookies: { "bg-bucket": { value } } });
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
      // The longest viewer settings too: every option on, the longest entry Cache-Control.
      const viewer = viewerSettings(embeddingSchema.parse({ entryMaxAgeSeconds: 86_400 }));
      const request = Buffer.byteLength(viewerRequestCode({ slot: "green", release: "r".repeat(64) }, viewer), "utf8");
      const response = Buffer.byteLength(viewerResponseCode(viewer), "utf8");
      expect(request).to.be.below(MAX_FUNCTION_CODE_BYTES);
      expect(response).to.be.below(MAX_FUNCTION_CODE_BYTES);
    });
  });
});
