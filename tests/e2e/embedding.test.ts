// The embedding model end to end (issue 13, point 3), in Chromium: a customer's page on another origin frames the
// widget through the local edge, at each weight, with third-party cookies allowed and blocked. What this Chromium does
// on loopback, found by these tests: it keeps `Secure` cookies set over plain http by `*.localhost` (a potentially
// trustworthy origin, https://w3c.github.io/webappsec-secure-contexts/#is-origin-trustworthy), so the stickiness cookie
// `SameSite=None; Secure; Partitioned` is stored in the frame, partitioned by the host page's site; blocking
// third-party cookies (DevTools protocol Network.setCookieControls; the --test-third-party-cookie-phaseout switch
// changed nothing in this build) drops unpartitioned cookies in the frame and keeps the partitioned one.
// https://chromedevtools.github.io/devtools-protocol/tot/Network/#method-setCookieControls
import { expect } from "chai";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import type { Browser, BrowserContext, Frame } from "playwright-core";
import { launchBrowser } from "../../automation/browserGate";
import { deploy as deployInProcess } from "../../automation/deploy";
import { exitCodeOf } from "../../automation/errors";
import { Reporter } from "../../automation/output";
import type { ConfigMap } from "../../automation/port";
import type { Slot } from "../../infra/config";
import { RELEASES_DIR, startE2E, type E2E } from "./support";

const RELEASES: Record<Slot, string> = { blue: "1.0.0", green: "2.0.0" };
const WEIGHTS = [0, 10, 25, 50, 75, 100];
const VIEWERS_PER_BROWSER = 2;
const TIMEOUT_MS = 15_000;

/** A customer's page: it frames the widget as the README says customers do. */
async function hostPage(widgetOrigin: string): Promise<{ server: Server; origin: string }> {
  const html = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><h1>A customer's page</h1><iframe id="widget" src="${widgetOrigin}/" width="480" height="200"></iframe></body></html>`;
  const server = createServer((req, res) => res.writeHead(req.url === "/" ? 200 : 404, { "content-type": "text/html; charset=utf-8" }).end(req.url === "/" ? html : ""));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface Viewer {
  context: BrowserContext;
  /** What each visit rendered: "<slot> <release> <text>". */
  visits: { weight: number; slot: string; release: string; text: string }[];
}

describe("the embedding model: a customer's page frames the widget in Chromium, with and without third-party cookies", function () {
  this.timeout(120_000);
  let e2e: E2E;
  let widgetOrigin: string;
  let allowed: { server: Server; origin: string };
  let other: { server: Server; origin: string };
  const browsers: { name: string; browser: Browser; blockThirdParty: boolean; viewers: Viewer[] }[] = [];

  async function deploy(release: string): Promise<void> {
    const reporter = new Reporter({ json: true, stdout: { write: () => true }, stderr: { write: () => true }, env: { CI: "true" } });
    let code = 0;
    await deployInProcess({ stack: "local", artifact: path.join(RELEASES_DIR, release), release, steps: [100], bakeMs: 0, json: true, dryRun: false }, reporter, { cloud: e2e.cloud }).catch((err: unknown) => (code = exitCodeOf(err)));
    expect(code, `deploy ${release}`).to.equal(0);
  }

  /** Sets the weights as a rollout step does (stack config, `up`); blue holds 1.0.0, green (stable) 2.0.0. */
  async function setBlueWeight(weight: number): Promise<void> {
    const stack = await e2e.cloud.stack("local");
    const values: ConfigMap = { "picasso-widget:weights": { value: JSON.stringify({ blue: weight, green: 100 - weight }), secret: false } };
    await stack.setAllConfig(values);
    await stack.up({ message: `test: blue at ${weight}%` });
  }

  /** A viewer: one browser context (its own cookies), kept across weights. */
  async function newViewer(browser: Browser): Promise<Viewer> {
    return { context: await browser.newContext(), visits: [] };
  }

  /** The widget's frame in a fresh tab of the viewer's browser context, once the widget rendered in it. */
  async function visit(viewer: Viewer, blockThirdParty: boolean, hostOrigin: string): Promise<{ frame: Frame; close: () => Promise<void>; console: string[] }> {
    const page = await viewer.context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    const console: string[] = [];
    page.on("console", (m) => console.push(m.text()));
    if (blockThirdParty) {
      // Applies to the tab's requests from the next navigation on ("Page reload is required").
      const cdp = await viewer.context.newCDPSession(page);
      await cdp.send("Network.enable");
      await cdp.send("Network.setCookieControls" as never, { enableThirdPartyCookieRestriction: true, disableThirdPartyCookieMetadata: true, disableThirdPartyCookieHeuristics: true } as never);
    }
    await page.goto(`${hostOrigin}/`, { waitUntil: "load" });
    const frame = (await (await page.$("#widget"))!.contentFrame())!;
    return { frame, close: () => page.close(), console };
  }

  before(async function () {
    e2e = await startE2E();
    widgetOrigin = `http://${e2e.cloud.host("local")}:${new URL(e2e.cloud.url).port}`;
    allowed = await hostPage(widgetOrigin);
    other = await hostPage(widgetOrigin);
    // The stack declares who may embed it: the customer's origin only.
    await e2e.tune({
      rollout: { bakeSeconds: 0, probesPerStep: 10, minSamples: 5 },
      verification: { browserGate: { enabled: false } },
      embedding: { corsOrigins: [allowed.origin], frameAncestors: [allowed.origin] },
    });
    await deploy("1.0.0");
    await deploy("2.0.0");
    for (const blockThirdParty of [false, true]) {
      const { browser } = await launchBrowser(TIMEOUT_MS);
      const entry = { name: blockThirdParty ? "third-party cookies blocked" : "third-party cookies allowed", browser, blockThirdParty, viewers: [] as Viewer[] };
      for (let i = 0; i < VIEWERS_PER_BROWSER; i++) entry.viewers.push(await newViewer(browser));
      browsers.push(entry);
    }
  });

  after(async () => {
    for (const b of browsers) await b.browser.close().catch(() => undefined);
    allowed?.server.close();
    other?.server.close();
    await e2e?.close();
  });

  it("renders the widget in the customer's page at each weight, and each viewer stays on its bucket's slot", async () => {
    for (const weight of WEIGHTS) {
      await setBlueWeight(weight);
      for (const { name, blockThirdParty, viewers } of browsers) {
        for (const viewer of viewers) {
          const { frame, close } = await visit(viewer, blockThirdParty, allowed.origin);
          try {
            await frame.locator(".picasso-widget").waitFor({ state: "visible" });
            const [, , slot, release] = new URL(frame.url()).pathname.split("/");
            // 2.0.0 replaces its built-in label with version.json's release once fetched: wait for the final text.
            // (In-page code is source text: it runs in Chromium, not under this project's Node typings.)
            await frame.waitForFunction(`/\\d+\\.\\d+\\.\\d+$/.test(document.querySelector(".picasso-widget")?.textContent ?? "")`);
            viewer.visits.push({ weight, slot, release, text: (await frame.locator(".picasso-widget").textContent()) ?? "" });
          } finally {
            await close();
          }
          const last = viewer.visits[viewer.visits.length - 1];
          expect(last.release, `${name} at ${weight}%`).to.equal(RELEASES[last.slot as Slot]);
          expect(last.text, `${name} at ${weight}%`).to.equal(`Picasso widget ${last.release}`);
        }
      }
    }
    for (const { name, viewers } of browsers) {
      for (const [i, viewer] of viewers.entries()) {
        // The partitioned stickiness cookie, kept in the frame under the customer's site.
        const cookies = (await viewer.context.cookies()).filter((c) => c.name === "bg-bucket");
        expect(cookies.map((c) => ({ secure: c.secure, sameSite: c.sameSite, partitionKey: c.partitionKey })), `${name}, viewer ${i}`).to.deep.equal([
          { secure: true, sameSite: "None", partitionKey: "http://127.0.0.1" },
        ]);
        const bucket = Number(cookies[0].value);
        // Every visit, the first (before the cookie) included, went where this one bucket goes: blue while bucket < weight.
        const expected = viewer.visits.map((v) => `${v.weight}% ${bucket < v.weight ? "blue" : "green"}`);
        expect(viewer.visits.map((v) => `${v.weight}% ${v.slot}`), `${name}, viewer ${i} in bucket ${bucket}`).to.deep.equal(expected);
      }
    }
  });

  it("blocks unpartitioned third-party cookies where asked (so the run above covered both cases), keeping partitioned ones", async () => {
    for (const { name, blockThirdParty, viewers } of browsers) {
      const { frame, close } = await visit(viewers[0], blockThirdParty, allowed.origin);
      try {
        await frame.locator(".picasso-widget").waitFor({ state: "visible" });
        const kept = await frame.evaluate<string[]>(`(() => {
          document.cookie = "unpartitioned=1; Path=/; Secure; SameSite=None";
          document.cookie = "partitioned=1; Path=/; Secure; SameSite=None; Partitioned";
          return document.cookie.split("; ").map((c) => c.split("=")[0]).filter((n) => n !== "bg-bucket").sort();
        })()`);
        expect(kept, name).to.deep.equal(blockThirdParty ? ["partitioned"] : ["partitioned", "unpartitioned"]);
      } finally {
        await close();
      }
    }
  });

  it("lets only the declared origin frame the widget and read its assets (CSP frame-ancestors, CORS)", async () => {
    const [{ blockThirdParty, viewers }] = browsers;
    // Run in the customer's page (not the frame): a cross-origin read of the widget's asset, which CORS must allow.
    const read = `fetch(${JSON.stringify(`${widgetOrigin}/version.json`)}).then((r) => r.json()).then((v) => v.release, (e) => "refused: " + e.name)`;
    const ok = await visit(viewers[0], blockThirdParty, allowed.origin);
    try {
      await ok.frame.locator(".picasso-widget").waitFor({ state: "visible" });
      expect(await ok.frame.page().evaluate(read)).to.match(/^\d+\.\d+\.\d+$/);
    } finally {
      await ok.close();
    }
    const refused = await visit(viewers[0], blockThirdParty, other.origin);
    try {
      expect(await refused.frame.page().evaluate(read)).to.equal("refused: TypeError");
      expect(await refused.frame.locator(".picasso-widget").count()).to.equal(0);
      // Chromium reports the refusal on the console; wait for it rather than for a render that will not come.
      const deadline = Date.now() + TIMEOUT_MS;
      while (!refused.console.some((m) => m.includes("frame-ancestors")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(refused.console.join("\n"), "Chromium's console in the page on the undeclared origin").to.match(/frame-ancestors/);
    } finally {
      await refused.close();
    }
  });
});
