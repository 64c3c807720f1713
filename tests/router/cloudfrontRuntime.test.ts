// The CloudFront Functions runtime shim itself: what it refuses, how it isolates invocations, and the
// conversions the local edge uses between Node http and CloudFront's event shapes.
import { expect } from "chai";
import {
  compileCloudFrontFunction,
  cookiesFromHeader,
  cookiesToHeader,
  headersFromNode,
  headersToNode,
  querystringFromSearch,
  querystringToSearch,
  responseCookiesFromSetCookie,
  setCookieHeaders,
  UnsupportedFunctionCodeError,
  viewerRequestEvent,
  viewerResponseEvent,
} from "../../automation/local/cloudfrontRuntime";
import { MAX_FUNCTION_CODE_BYTES } from "../../infra/routerCode";

const PASS_THROUGH = "async function handler(event) { return event.request; }";

describe("CloudFront Functions runtime shim", () => {
  describe("compile", () => {
    const rejected: [string, string, RegExp][] = [
      ["another module", "import fs from 'fs';\n" + PASS_THROUGH, /only "import cf from 'cloudfront'"/],
      ["an export", PASS_THROUGH + "\nexport { handler };", /found "export"/],
      ["a cloudfront member the shim lacks", "import cf from 'cloudfront';\nasync function handler(event) { cf.createRequestOriginGroup({}); return event.request; }", /cf\.createRequestOriginGroup is not provided/],
      ["a crypto member the shim lacks", "import crypto from 'crypto';\nasync function handler(event) { crypto.randomBytes(4); return event.request; }", /crypto\.randomBytes is not provided/],
      ["code without a handler", "function main(event) { return event.request; }", /no top-level function named handler/],
      ["code over 10 KB", PASS_THROUGH + "\n//" + "x".repeat(MAX_FUNCTION_CODE_BYTES), /limited to 10240/],
    ];
    for (const [what, code, message] of rejected) {
      it(`rejects ${what}`, () => {
        expect(() => compileCloudFrontFunction(code)).to.throw(UnsupportedFunctionCodeError, message);
      });
    }

    it("gives the code no Node globals", async () => {
      const fn = compileCloudFrontFunction("async function handler(event) { event.request.uri = typeof process + typeof require + typeof setTimeout; return event.request; }");
      const { output } = await fn.run(viewerRequestEvent({ uri: "/" }));
      expect(output).to.deep.include({ uri: "undefinedundefinedundefined" });
    });

    it("gives the code the context's own built-ins, and lets it shadow them", async () => {
      const code = [
        "const checks = [Number === globalThis.Number, JSON === globalThis.JSON, [] instanceof Array, Object.getPrototypeOf({}) === Object.prototype];",
        "function parseInt() { return 'mine'; }",
        "async function handler(event) { event.request.uri = checks.join() + ',' + parseInt('1') + ',' + typeof eval; return event.request; }",
      ].join("\n");
      const { output } = await compileCloudFrontFunction(code).run(viewerRequestEvent({ uri: "/" }));
      expect(output).to.deep.include({ uri: "true,true,true,true,mine,function" });
    });

    it("refuses a hash algorithm CloudFront's crypto module lacks", async () => {
      const fn = compileCloudFrontFunction("import crypto from 'crypto';\nasync function handler(event) { crypto.createHash('sha512'); return event.request; }");
      await fn.run(viewerRequestEvent({ uri: "/" })).then(
        () => expect.fail("expected a rejection"),
        (error: Error) => expect(error.message).to.match(/"sha512" is not supported/),
      );
    });

    it("fails an invocation whose handler returns neither a request nor a response", async () => {
      const fn = compileCloudFrontFunction("async function handler() { return 'ok'; }");
      await fn.run(viewerRequestEvent({ uri: "/" })).then(
        () => expect.fail("expected a rejection"),
        (error: Error) => expect(error.message).to.match(/must return the request or a response/),
      );
    });
  });

  describe("cloudfront module", () => {
    const SELECTING = [
      "import cf from 'cloudfront';",
      "async function handler(event) {",
      "  event.request.headers.started = { value: 'yes' };",
      "  const slot = await cf.kvs().get(event.request.uri.slice(1));",
      "  cf.selectRequestOriginById(slot);",
      "  return event.request;",
      "}",
    ].join("\n");

    it("keeps each invocation's origin choice its own when invocations overlap", async () => {
      const values: Record<string, string> = { a: "blue", b: "green", c: "blue" };
      const fn = compileCloudFrontFunction(SELECTING, { kvs: () => (key) => values[key] });
      // All three are submitted before any finishes; each has to run with its own origin state.
      const results = await Promise.all(["/a", "/b", "/c"].map((uri) => fn.run(viewerRequestEvent({ uri }))));
      expect(results.map((r) => r.originId)).to.deep.equal(["blue", "green", "blue"]);
    });

    it("runs an invocation queued behind a failing one", async () => {
      const values: Record<string, string> = { b: "green" };
      const fn = compileCloudFrontFunction(SELECTING, { kvs: () => (key) => values[key] });
      const [a, b] = await Promise.allSettled([fn.run(viewerRequestEvent({ uri: "/missing" })), fn.run(viewerRequestEvent({ uri: "/b" }))]);
      expect(a.status === "rejected" && (a.reason as Error).message).to.match(/"missing" does not exist/);
      expect(b.status === "fulfilled" && b.value.originId).to.equal("green");
      // Nothing is left in flight: a third run after both settled starts at once instead of queueing.
      const third = viewerRequestEvent({ uri: "/b" });
      const run = fn.run(third);
      expect(third.request.headers.started, "the handler ran synchronously inside run()").to.deep.equal({ value: "yes" });
      expect((await run).originId).to.equal("green");
    });

    it("settles a run whose plain (non-async) handler throws, and runs the next one", async () => {
      const fn = compileCloudFrontFunction("function handler(event) { if (event.request.uri === '/bad') throw new Error('bad request'); return event.request; }");
      await fn.run(viewerRequestEvent({ uri: "/bad" })).then(
        () => expect.fail("expected a rejection"),
        (error: Error) => expect(error.message).to.equal("bad request"),
      );
      const ok = viewerRequestEvent({ uri: "/ok" });
      expect((await fn.run(ok)).output).to.equal(ok.request);
    });

    it("makes cf.kvs() throw when no store is associated", async () => {
      const fn = compileCloudFrontFunction(SELECTING, { kvs: () => undefined });
      await fn.run(viewerRequestEvent({ uri: "/a" })).then(
        () => expect.fail("expected a rejection"),
        (error: Error) => expect(error.message).to.match(/no key value store is associated/),
      );
    });

    it("refuses origin selection in a viewer-response function", async () => {
      const fn = compileCloudFrontFunction("import cf from 'cloudfront';\nasync function handler(event) { cf.selectRequestOriginById('blue'); return event.response; }");
      const event = viewerResponseEvent({ uri: "/", requestId: "r" }, { statusCode: 200 });
      await fn.run(event).then(
        () => expect.fail("expected a rejection"),
        (error: Error) => expect(error.message).to.match(/only available in viewer-request functions/),
      );
    });

    it("hands the caller a promise of the caller's own realm", async () => {
      const fn = compileCloudFrontFunction(SELECTING, { kvs: () => () => "blue" });
      const run = fn.run(viewerRequestEvent({ uri: "/a" }));
      expect(run).to.be.instanceOf(Promise);
      expect((await run).originId).to.equal("blue");
    });

    it("decodes the three KVS formats, in promises of the function's own realm", async () => {
      const READING = [
        "import cf from 'cloudfront';",
        "async function handler(event) {",
        "  const format = event.request.uri.slice(1);",
        "  const pending = cf.kvs().get('k', { format });",
        "  const value = await pending;",
        "  const shown = format === 'json' ? 'n=' + value.n + ' own-object=' + (value instanceof Object) : format === 'bytes' ? 'buffer=' + Buffer.isBuffer(value) + ' ' + value.toString() : value;",
        "  return { statusCode: 200, statusDescription: shown + ' own-promise=' + (pending instanceof Promise) };",
        "}",
      ].join("\n");
      const fn = compileCloudFrontFunction(READING, { kvs: () => (key) => (key === "k" ? '{"n":1}' : undefined) });
      const shown = async (format: string) => ((await fn.run(viewerRequestEvent({ uri: `/${format}` }))).output as { statusDescription: string }).statusDescription;
      expect(await shown("string")).to.equal('{"n":1} own-promise=true');
      expect(await shown("json")).to.equal("n=1 own-object=true own-promise=true");
      expect(await shown("bytes")).to.equal('buffer=true {"n":1} own-promise=true');
      await fn.run(viewerRequestEvent({ uri: "/xml" })).then(
        () => expect.fail("expected a rejection"),
        (error: Error) => expect(error.message).to.match(/format "xml" is not one of string, json, bytes/),
      );
    });
  });

  describe("events", () => {
    it("builds the viewer-response event from the request as the viewer sent it, not as the function changed it", async () => {
      const viewer = { uri: "/docs/", requestId: "req-1", headers: { "x-secret": { value: "s" } } };
      const fn = compileCloudFrontFunction("async function handler(event) { delete event.request.headers['x-secret']; event.request.uri = '/x'; return event.request; }");
      await fn.run(viewerRequestEvent(viewer));
      const event = viewerResponseEvent(viewer, { statusCode: 200 });
      expect(event.context).to.deep.include({ eventType: "viewer-response", requestId: "req-1" });
      expect(event.request).to.deep.include({ uri: "/docs/", headers: { "x-secret": { value: "s" } } });
    });
  });

  describe("Node http conversions", () => {
    it("maps headers both ways, keeping repeated values and leaving cookies to the cookie helpers", () => {
      const headers = headersFromNode({ host: "example.test", "x-forwarded-for": "1.1.1.1", cookie: "a=1", "set-cookie": ["b=2"], "x-many": ["1", "2"] } as never);
      expect(headers).to.deep.equal({
        host: { value: "example.test" },
        "x-forwarded-for": { value: "1.1.1.1" },
        "x-many": { value: "1", multiValue: [{ value: "1" }, { value: "2" }] },
      });
      expect(headersToNode(headers)).to.deep.equal({ host: "example.test", "x-forwarded-for": "1.1.1.1", "x-many": ["1", "2"] });
    });

    it("parses the Cookie header and rebuilds it", () => {
      const cookies = cookiesFromHeader("bg-bucket=42; session=a=b; bg-bucket=7");
      expect(cookies).to.deep.equal({
        "bg-bucket": { value: "42", multiValue: [{ value: "42" }, { value: "7" }] },
        session: { value: "a=b" },
      });
      expect(cookiesToHeader(cookies)).to.equal("bg-bucket=42; bg-bucket=7; session=a=b");
      expect(cookiesToHeader({})).to.equal(undefined);
    });

    it("parses Set-Cookie lines and writes them back", () => {
      const lines = ["bg-bucket=42; Path=/; Max-Age=86400; Secure; SameSite=Lax", "plain=1"];
      const cookies = responseCookiesFromSetCookie(lines);
      expect(cookies).to.deep.equal({ "bg-bucket": { value: "42", attributes: "Path=/; Max-Age=86400; Secure; SameSite=Lax" }, plain: { value: "1" } });
      expect(setCookieHeaders(cookies)).to.deep.equal(lines);
    });

    it("keeps query string values encoded as sent", () => {
      const querystring = querystringFromSearch("?q=a%20b&tag=x&tag=y&flag");
      expect(querystring).to.deep.equal({
        q: { value: "a%20b" },
        tag: { value: "x", multiValue: [{ value: "x" }, { value: "y" }] },
        flag: { value: "" },
      });
      expect(querystringToSearch(querystring)).to.equal("?q=a%20b&tag=x&tag=y&flag");
      expect(querystringToSearch({})).to.equal("");
    });
  });
});
