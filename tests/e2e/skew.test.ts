// Skew protection end to end on the local cloud (issue 13, point 2): during a real rollout, at each step, cookieless
// page loads over real sockets through the edge get every asset their page references with status 200 and from the
// page's own release; a page opened before the rollout still loads its assets (its lazy chunk included) after it, and
// after the next release has replaced its release in that slot. The references are followed as a browser follows
// them: the entry point's redirect, then every URL the HTML, CSS and JS reference (automation/references.ts), each
// request carrying its referrer.
import { expect } from "chai";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { deploy as deployInProcess } from "../../automation/deploy";
import { exitCodeOf } from "../../automation/errors";
import { Reporter } from "../../automation/output";
import { referencesIn } from "../../automation/references";
import type { DeployReport, ProgressEvent } from "../../automation/rollout";
import { ROUTING_PROBE_PATH } from "../../automation/rollout";
import { parseJson, startE2E, type E2E } from "./support";

const PAGE_LOADS = 50;
const STEPS = [10, 25, 50, 75, 100];

interface Fetched {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A page load as a browser makes it: what it fetched, and what went wrong. */
interface PageLoad {
  /** The release-qualified URL the entry point redirected to. */
  page: string;
  release: string;
  fetched: string[];
  problems: string[];
}

describe("skew protection: a page and its assets from one release, through the edge", function () {
  this.timeout(120_000);
  let e2e: E2E;
  let work: string;
  let origin: string;
  const files = new Map<string, Map<string, Buffer>>();

  /**
   * A release whose page loads a stylesheet (which loads an image), a module script with a lazy chunk (a dynamic
   * import), and a path-absolute image: every asset fingerprinted and carrying the release id in its bytes.
   */
  function release(id: string): string {
    const dir = path.join(work, id);
    const out = new Map<string, Buffer>();
    const put = (name: (hash: string) => string, text: string): string => {
      const file = name(createHash("sha256").update(text).digest("hex").slice(0, 10));
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
      out.set(file, Buffer.from(text));
      return file;
    };
    const logo = put((h) => `assets/logo.${h}.svg`, `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><title>${id}</title></svg>\n`);
    const chunk = put((h) => `assets/chunk.${h}.js`, `export const release = ${JSON.stringify(id)};\n`);
    const css = put((h) => `assets/app.${h}.css`, `/* ${id} */ .picasso-widget { background: url(${path.basename(logo)}) no-repeat; }\n`);
    const js = put(
      (h) => `assets/app.${h}.js`,
      `// ${id}\nconst node = document.querySelector("[data-picasso-widget]");\nnode.className = "picasso-widget";\n` +
        `node.addEventListener("click", () => import("./${path.basename(chunk)}").then((m) => (node.textContent = m.release)));\n`,
    );
    put(() => "version.json", JSON.stringify({ release: id }) + "\n");
    put(
      () => "index.html",
      `<!doctype html>\n<html><head><meta charset="utf-8"><title>${id}</title><link rel="stylesheet" href="${css}"></head>\n` +
        `<body><div data-picasso-widget>picasso-widget ${id}</div><img src="/${logo}" alt=""><script type="module" src="${js}"></script></body></html>\n`,
    );
    files.set(id, out);
    return dir;
  }

  /** GET over a real socket to the edge, as a browser on `origin` would send it. */
  function get(url: string, referer?: string): Promise<Fetched> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const req = httpRequest(e2e.cloud.url, { path: u.pathname + u.search, headers: { host: u.host, ...(referer ? { referer } : {}) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  }

  /** Loads `pageUrl` (following the entry point's redirect when it is one) and every URL it references, transitively. */
  async function loadPage(pageUrl: string): Promise<PageLoad> {
    let page = pageUrl;
    const entry = await get(page);
    if (entry.status === 302) page = new URL(String(entry.headers.location), page).href;
    const match = /^\/_r\/(blue|green)\/([\w.-]+)\//.exec(new URL(page).pathname);
    const load: PageLoad = { page, release: match?.[2] ?? "(none)", fetched: [], problems: [] };
    if (match === null) {
      load.problems.push(`${pageUrl} answered ${entry.status}, location ${String(entry.headers.location)}: not a release-qualified page`);
      return load;
    }
    const prefix = match[0];
    const expected = files.get(load.release)!;
    const queue: { url: string; referer?: string }[] = [{ url: page }];
    const seen = new Set<string>();
    while (queue.length > 0) {
      const { url, referer } = queue.shift()!;
      if (seen.has(url)) continue;
      seen.add(url);
      const res = await get(url, referer);
      const pathname = new URL(url).pathname;
      // The file of the artifact this URL names: under the page's prefix, or path-absolute from the artifact's root.
      const file = (pathname.startsWith(prefix) ? pathname.slice(prefix.length) : pathname.slice(1)) || "index.html";
      load.fetched.push(file);
      const got = `${res.status} ${String(res.headers["x-bluegreen-release"])}`;
      if (got !== `200 ${load.release}` || !res.body.equals(expected.get(file) ?? Buffer.alloc(0))) {
        load.problems.push(`${url} (page ${page}): ${got}, ${expected.get(file)?.equals(res.body) ? "same bytes" : "other bytes"}; expected 200 ${load.release} and ${file} of ${load.release}`);
        continue;
      }
      // A stylesheet's or a script's references resolve against its own URL; its requests carry it as the referrer.
      for (const ref of referencesIn(file, res.body.toString("utf8"))) queue.push({ url: new URL(ref, url).href, referer: url });
    }
    return load;
  }

  async function pageLoads(n: number): Promise<PageLoad[]> {
    const loads: PageLoad[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (loads.length < n) {
          const slot = loads.push({ page: "", release: "", fetched: [], problems: [] }) - 1;
          loads[slot] = await loadPage(`${origin}/`);
        }
      }),
    );
    return loads;
  }

  async function routingRevision(): Promise<number> {
    return (JSON.parse((await get(`${origin}${ROUTING_PROBE_PATH}`)).body.toString("utf8")) as { rev: number }).rev;
  }

  /** deploy() in this process; `onEvent` sees its progress events as they happen. */
  async function deploy(id: string, steps: number[], bakeMs: number, onEvent: (event: ProgressEvent) => void = () => {}): Promise<DeployReport> {
    let stdout = "";
    let stderr = "";
    const reporter = new Reporter({ json: true, stdout: { write: (t: string) => ((stdout += t), true) }, stderr: { write: (t: string) => ((stderr += t), true) }, env: { CI: "true" } });
    const emit = reporter.emit.bind(reporter);
    reporter.emit = (event) => {
      onEvent(event);
      emit(event);
    };
    let code = 0;
    try {
      await deployInProcess({ stack: "local", artifact: release(id), release: id, steps, bakeMs, json: true, dryRun: false }, reporter, { cloud: e2e.cloud });
    } catch (err) {
      code = exitCodeOf(err);
    }
    expect(code, stderr).to.equal(0);
    return parseJson<DeployReport>(stdout);
  }

  before(async function () {
    work = mkdtempSync(path.join(tmpdir(), "bluegreen-skew-"));
    e2e = await startE2E();
    origin = `http://${e2e.cloud.host("local")}:${new URL(e2e.cloud.url).port}`;
    // The browser gate has its own tests; here the probes of the steps and the page loads are the point.
    await e2e.tune({ rollout: { bakeSeconds: 0, probesPerStep: 20, minSamples: 5 }, verification: { browserGate: { enabled: false } } });
    await deploy("1.0.0", [100], 0);
  });

  after(async () => {
    await e2e?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it(`gives ${PAGE_LOADS} cookieless page loads at each step every referenced asset with status 200 from the page's own release, and keeps a page opened before the rollout loading after it and after the next`, async () => {
    const before = await loadPage(`${origin}/`);
    expect(before.problems).to.deep.equal([]);
    expect(before.release).to.equal("1.0.0");
    // The page, its stylesheet, the stylesheet's image, the script, its lazy chunk, and the path-absolute image.
    expect(before.fetched).to.have.length(6);

    const batches: Promise<{ weight: number; revision: number; loads: PageLoad[] }>[] = [];
    const report = await deploy("2.0.0", STEPS, 2_000, (event) => {
      // The first probe of a step's bake: the edge serves that step's routing now.
      if (event.kind === "bake" && event.bake.check === 1 && batches.length === event.bake.index) {
        const weight = event.bake.weight;
        batches.push(routingRevision().then(async (revision) => ({ weight, revision, loads: await pageLoads(PAGE_LOADS) })));
      }
    });
    expect(report.result).to.equal("succeeded");
    const done = await Promise.all(batches);
    expect(done.map((b) => b.weight)).to.deep.equal(STEPS);
    // Each batch started at its own step's routing revision.
    expect(new Set(done.map((b) => b.revision)).size).to.equal(STEPS.length);
    for (const batch of done) {
      expect(batch.loads, `at ${batch.weight}%`).to.have.length(PAGE_LOADS);
      const problems = batch.loads.flatMap((l) => l.problems);
      expect(problems, `at ${batch.weight}%`).to.deep.equal([]);
      for (const load of batch.loads) expect(load.fetched, load.page).to.have.length(6);
      const releases = new Set(batch.loads.map((l) => l.release));
      if (batch.weight === 100) expect([...releases], "at 100% every new page is the new release").to.deep.equal(["2.0.0"]);
    }
    // Both releases were served while the weight was between 0 and 100: the loads did cross releases.
    expect(new Set(done.slice(1, 4).flatMap((b) => b.loads.map((l) => l.release)))).to.deep.equal(new Set(["1.0.0", "2.0.0"]));

    // The page opened before the rollout (1.0.0 on blue) loads all its assets, its lazy chunk included, after it...
    const after = await loadPage(before.page);
    expect(after.problems).to.deep.equal([]);
    expect(after.fetched).to.deep.equal(before.fetched);
    // ...and after 3.0.0 has replaced 1.0.0 as blue's release: 1.0.0 is only retained in blue's bucket now.
    const next = await deploy("3.0.0", [100], 0);
    expect(next.slot).to.equal("blue");
    const later = await loadPage(before.page);
    expect(later.problems).to.deep.equal([]);
    expect(later.fetched).to.deep.equal(before.fetched);
    expect((await loadPage(`${origin}/`)).release).to.equal("3.0.0");
  });

  it("answers the entry point with a redirect viewers may not keep, and the release's URLs as immutable", async () => {
    const entry = await get(`${origin}/?theme=dark`);
    expect(entry.status).to.equal(302);
    expect(entry.headers.location).to.match(/^\/_r\/(blue|green)\/3\.0\.0\/\?theme=dark$/);
    expect(entry.headers["cache-control"]).to.equal("private, no-cache");
    expect(String(entry.headers["set-cookie"])).to.match(/^bg-bucket=\d{1,2}; Path=\/; Max-Age=86400; Secure; SameSite=None; Partitioned$/);
    const page = await get(new URL(String(entry.headers.location), origin).href);
    expect(page.status).to.equal(200);
    expect(page.headers["cache-control"]).to.equal("public, max-age=31536000, immutable");
    expect(page.headers["set-cookie"]).to.equal(undefined);
    const health = await get(`${origin}/version.json`);
    expect(health.headers["cache-control"]).to.equal("private, no-cache");
    expect(JSON.parse(readFileSync(path.join(work, "3.0.0", "version.json"), "utf8"))).to.deep.equal(JSON.parse(health.body.toString("utf8")));
  });
});
