// The real-browser gate: a headless Chromium loads a host page on another origin that embeds the widget as customers
// do, the candidate through the preview route and the stable slot in the same run, several loads each. The verdict is
// a pure function of what the loads observed (judgeBrowserRun); everything else here is browser and socket I/O.
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, get as httpGet, type IncomingHttpHeaders, type Server } from "node:http";
import { get as httpsGet } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { Slot, StackConfig } from "../infra/config";
import { HttpProber, type EdgeTarget, type Prober } from "./prober";

export interface BrowserGateThresholds {
  /** A candidate median this much worse than the stable slot's fails (0.5: 50 percent worse). */
  maxRegression: number;
  /** Differences in load or render time below this are noise on a loaded CI machine, whatever the ratio. */
  minTimeDeltaMs: number;
  /** A few kilobytes more is a feature, not a regression, on a widget of a few kilobytes. */
  minBytesDelta: number;
  /** One long task is at least 50 ms by definition (https://w3c.github.io/longtasks/): less than that is noise. */
  minLongTaskDeltaMs: number;
}

export const DEFAULT_THRESHOLDS: BrowserGateThresholds = { maxRegression: 0.5, minTimeDeltaMs: 100, minBytesDelta: 10_000, minLongTaskDeltaMs: 50 };

/** One page load as the browser saw it. Times are from the widget document's navigation start. */
export interface LoadObservation {
  /** Uncaught exceptions and unhandled rejections in any frame. */
  errors: string[];
  consoleErrors: string[];
  /** The widget's own requests that failed: status >= 400 or no response at all (status 0). */
  failedRequests: { url: string; status: number; reason: string }[];
  rendered: boolean;
  /** Null when the widget document never loaded. */
  metrics: LoadMetrics | null;
  /** The page itself did not load (navigation failed or timed out). */
  loadError?: string;
  /** Set when a widget request got a 5xx or no response on every attempt: availability, not the release's content. */
  unavailable?: string;
}

export interface LoadMetrics {
  loadMs: number;
  renderMs: number;
  /** Time spent waiting for the edge on the critical path (document, then the slowest subresource before render):
   * the edge's latency is the step analysis's to judge (p95 with its noise model); the gate judges what the
   * release's bytes cost in the browser, so load and render are compared net of it. */
  serverWaitMs: number;
  /** Bytes over the wire for the widget's document and subresources (Resource Timing transferSize). */
  bytes: number;
  /** Sum of long-task durations (https://developer.mozilla.org/docs/Web/API/PerformanceLongTaskTiming). */
  longTaskMs: number;
}

export interface SlotMedians extends LoadMetrics {
  loads: number;
}

export type BrowserFindingKind = "browser" | "host-page" | "uncaught-error" | "console-error" | "failed-request" | "not-rendered" | "performance";

export interface BrowserFinding {
  kind: BrowserFindingKind;
  slot: Slot | null;
  message: string;
}

export interface BrowserJudgement {
  verdict: "passed" | "failed";
  findings: BrowserFinding[];
  notes: string[];
  medians: Partial<Record<Slot, SlotMedians>>;
}

export interface SlotRun {
  slot: Slot;
  loads: LoadObservation[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function mediansOf(loads: readonly LoadObservation[]): SlotMedians | undefined {
  const m = loads.map((l) => l.metrics).filter((x): x is LoadMetrics => x !== null);
  if (m.length === 0) return undefined;
  const pick = (k: keyof LoadMetrics) => Math.round(median(m.map((x) => x[k])) * 10) / 10;
  return { loads: m.length, loadMs: pick("loadMs"), renderMs: pick("renderMs"), serverWaitMs: pick("serverWaitMs"), bytes: pick("bytes"), longTaskMs: pick("longTaskMs") };
}

/**
 * The verdict on the candidate's loads, against the stable slot's from the same run (null on a stack's first release:
 * there is nothing to regress against). Absolute checks fail on any load; performance compares medians, and a metric
 * regresses only when it is both more than `maxRegression` worse and worse by more than its noise floor.
 */
export function judgeBrowserRun(candidateRun: SlotRun, stableRun: SlotRun | null, thresholds: BrowserGateThresholds = DEFAULT_THRESHOLDS): BrowserJudgement {
  const findings: BrowserFinding[] = [];
  const notes: string[] = [];
  // A 5xx or a dropped connection says the edge or origin was unavailable, which the step analysis judges with its
  // error-rate rules and many more samples; such loads are not the release's content, so they are left out here.
  const judged = (run: SlotRun): SlotRun => {
    const out = run.loads.filter((l) => l.unavailable !== undefined);
    if (out.length > 0) notes.push(`${run.slot}: ${out.length} of ${run.loads.length} loads not judged (${out[0].unavailable})`);
    return { slot: run.slot, loads: run.loads.filter((l) => l.unavailable === undefined) };
  };
  const candidate = judged(candidateRun);
  const stable = stableRun ? judged(stableRun) : null;
  const slot = candidate.slot;
  const first = <T>(pick: (l: LoadObservation) => T[]): { item: T; loads: number } | undefined => {
    const hit = candidate.loads.map(pick).filter((xs) => xs.length > 0);
    return hit.length > 0 ? { item: hit[0][0], loads: hit.length } : undefined;
  };
  const of = (n: number) => `${n} of ${candidate.loads.length} loads`;
  const loadErr = first((l) => (l.loadError ? [l.loadError] : []));
  if (loadErr) findings.push({ kind: "host-page", slot, message: `${slot}: the page did not load in ${of(loadErr.loads)}: ${loadErr.item}` });
  const err = first((l) => l.errors);
  if (err) findings.push({ kind: "uncaught-error", slot, message: `${slot}: uncaught error in ${of(err.loads)}: ${err.item}` });
  const cons = first((l) => l.consoleErrors);
  if (cons) findings.push({ kind: "console-error", slot, message: `${slot}: console error in ${of(cons.loads)}: ${cons.item}` });
  const req = first((l) => l.failedRequests);
  if (req) findings.push({ kind: "failed-request", slot, message: `${slot}: request for ${req.item.url} failed (${req.item.status === 0 ? req.item.reason : `status ${req.item.status}`}) in ${of(req.loads)}` });
  const missing = candidate.loads.filter((l) => !l.rendered && !l.loadError).length;
  if (missing > 0) findings.push({ kind: "not-rendered", slot, message: `${slot}: the widget did not render in ${of(missing)}` });

  const medians: Partial<Record<Slot, SlotMedians>> = {};
  const c = mediansOf(candidate.loads);
  const s = stable ? mediansOf(stable.loads) : undefined;
  if (c) medians[slot] = c;
  if (stable && s) medians[stable.slot] = s;
  if (stable && c && s) {
    const limit = 1 + thresholds.maxRegression;
    const compared: { name: string; cand: number; base: number; floor: number; unit: string }[] = [
      { name: "render time", cand: c.renderMs - c.serverWaitMs, base: s.renderMs - s.serverWaitMs, floor: thresholds.minTimeDeltaMs, unit: "ms" },
      { name: "load time", cand: c.loadMs - c.serverWaitMs, base: s.loadMs - s.serverWaitMs, floor: thresholds.minTimeDeltaMs, unit: "ms" },
      { name: "transferred bytes", cand: c.bytes, base: s.bytes, floor: thresholds.minBytesDelta, unit: " B" },
      { name: "long tasks", cand: c.longTaskMs, base: s.longTaskMs, floor: thresholds.minLongTaskDeltaMs, unit: "ms" },
    ];
    for (const m of compared) {
      if (m.cand - m.base > m.floor && m.cand > m.base * limit) {
        findings.push({
          kind: "performance",
          slot,
          message: `${slot}: ${m.name} ${Math.round(m.cand)}${m.unit} against ${stable.slot}'s ${Math.round(m.base)}${m.unit} (medians of ${c.loads} and ${s.loads} loads) is more than ${Math.round(thresholds.maxRegression * 100)} percent worse`,
        });
      }
    }
  }
  return { verdict: findings.length > 0 ? "failed" : "passed", findings, notes, medians };
}

/** Chromium refuses to frame a document whose CSP frame-ancestors (which wins when present) or X-Frame-Options
 * excludes the host page's origin. https://developer.mozilla.org/docs/Web/HTTP/Headers/Content-Security-Policy/frame-ancestors */
export function framingForbidden(headers: IncomingHttpHeaders, hostOrigin: string): string | undefined {
  const csp = [headers["content-security-policy"] ?? []].flat().join(";");
  const directive = /(?:^|;)\s*frame-ancestors\s+([^;]*)/i.exec(csp);
  if (directive) {
    const sources = directive[1].trim().split(/\s+/);
    return sources.includes("*") || sources.includes(hostOrigin) ? undefined : `Content-Security-Policy frame-ancestors ${directive[1].trim()}`;
  }
  const xfo = headers["x-frame-options"];
  return xfo !== undefined ? `X-Frame-Options ${String(xfo)}` : undefined;
}

// ---- I/O ----------------------------------------------------------------------------------------------------------

export interface BrowserGateOptions {
  /** The edge as the prober reaches it; `host` names the stack on the local edge. */
  edgeUrl: string;
  host?: string;
  previewToken: string;
  candidate: Slot;
  /** Null on a stack's first release. */
  stable: Slot | null;
  selector: string;
  loads: number;
  timeoutMs: number;
  thresholds?: Partial<BrowserGateThresholds>;
  outDir: string;
}

export interface BrowserGateResult extends BrowserJudgement {
  /** How the widget was embedded: in an <iframe> of the host page, or top-level when its responses forbid framing. */
  embedding: "iframe" | "top-level";
  browser: { executable: string; source: string; version: string } | null;
  notes: string[];
  screenshots: Partial<Record<Slot, string>>;
  report: string;
  durationMs: number;
}

/** Flags for a throwaway browser on a closed network, as root in CI (no user namespace for the sandbox).
 * https://peter.sh/experiments/chromium-command-line-switches/ and https://playwright.dev/docs/api/class-browsertype#browser-type-launch */
const LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const SYSTEM_BROWSERS = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
/** Errors thrown from timers soon after the render are the release's too: each load watches this long after `load`. */
const SETTLE_MS = 300;
/** The bounds runBrowserGate puts on launching the browser and on one load (navigation, selector, settle, screenshot). */
const launchBoundMs = (timeoutMs: number) => timeoutMs * 2 + 30_000;
const loadBoundMs = (timeoutMs: number) => timeoutMs * 3 + SETTLE_MS + 5_000;

/** The longest the gate can take in a rollout (every wait at its bound), for the CI time limits (automation/budget.ts). */
export function browserGateBoundMs(settings: StackConfig["verification"]["browserGate"], slots: 1 | 2): number {
  return settings.enabled ? launchBoundMs(settings.timeoutMs) + settings.timeoutMs + settings.loads * slots * loadBoundMs(settings.timeoutMs) : 0;
}
/** Chromium logs every failed subresource as a console error; those are judged as failed requests, once. */
const RESOURCE_CONSOLE_ERROR = /^Failed to load resource/;

/** The machine's Chrome or Chromium first (GitHub's runners have Chrome), else the one @sparticuz/chromium ships in
 * its npm tarball (unpacked to /tmp on first use), so `npm ci && npm test` needs no other step. */
export async function findBrowser(env: NodeJS.ProcessEnv = process.env): Promise<{ executable: string; source: string }> {
  if (env.BLUEGREEN_CHROMIUM) {
    if (!existsSync(env.BLUEGREEN_CHROMIUM)) throw new Error(`BLUEGREEN_CHROMIUM=${env.BLUEGREEN_CHROMIUM} does not exist`);
    return { executable: env.BLUEGREEN_CHROMIUM, source: "BLUEGREEN_CHROMIUM" };
  }
  const dirs = [...(env.PATH ?? "").split(path.delimiter).filter(Boolean), "/usr/bin", "/opt/google/chrome"];
  const system = SYSTEM_BROWSERS.flatMap((name) => dirs.map((d) => path.join(d, name))).find((p) => existsSync(p));
  if (system) return { executable: system, source: "system" };
  try {
    return { executable: await unpackedChromium(), source: "@sparticuz/chromium" };
  } catch (err) {
    throw new Error(`no Chrome or Chromium found (looked at BLUEGREEN_CHROMIUM, ${SYSTEM_BROWSERS.join(", ")} on PATH, @sparticuz/chromium: ${err instanceof Error ? err.message : String(err)})`);
  }
}

const UNPACK_LOCK = path.join(tmpdir(), "bluegreen-chromium-unpack.lock");
const UNPACK_LOCK_STALE_MS = 120_000;

/**
 * @sparticuz/chromium unpacks to /tmp/chromium and takes an existing file as done, so a second process starting
 * while the first still writes would launch half a binary: one unpack at a time, across processes (mkdir is atomic).
 */
async function unpackedChromium(): Promise<string> {
  const deadline = Date.now() + UNPACK_LOCK_STALE_MS;
  for (;;) {
    try {
      mkdirSync(UNPACK_LOCK);
      break;
    } catch {
      const age = Date.now() - (statSync(UNPACK_LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > UNPACK_LOCK_STALE_MS) rmSync(UNPACK_LOCK, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`another process has been unpacking @sparticuz/chromium for over ${UNPACK_LOCK_STALE_MS / 1000} s (${UNPACK_LOCK})`);
      else await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    const { default: chromium } = await import("@sparticuz/chromium");
    return await chromium.executablePath();
  } finally {
    rmSync(UNPACK_LOCK, { recursive: true, force: true });
  }
}

export async function launchBrowser(timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<{ browser: Browser; executable: string; source: string }> {
  const found = await findBrowser(env);
  const { chromium } = await import("playwright-core");
  // launch() starts Chromium on a fresh temporary profile and removes it on close: nothing cached or stored by an
  // earlier run can make a slot look faster. https://playwright.dev/docs/api/class-browsertype#browser-type-launch
  // Playwright's own SIGINT handler would close the browser and exit the process with code 130 (handleSIGINT defaults to
  // true: playwright-core/lib/server/utils/processLauncher.js, sigintHandler), so a Ctrl-C during the gate ended a
  // rollout without its revert. The driver holds SIGINT and SIGTERM itself (signals.ts); the browser has a process
  // group of its own (the same file: `detached`), so a terminal's Ctrl-C does not reach it either.
  const browser = await chromium.launch({ executablePath: found.executable, args: LAUNCH_ARGS, headless: true, timeout: timeoutMs, handleSIGINT: false, handleSIGTERM: false });
  return { browser, ...found };
}

/** The host page: another origin (its own loopback port) that frames the widget as a customer's page does. */
async function startHostPage(widgetUrl: string): Promise<{ url: string; origin: string; server: Server }> {
  const page = `<!doctype html><html><head><meta charset="utf-8"><title>host page</title><link rel="icon" href="data:,"></head>
<body><h1>A customer's page</h1><iframe id="bluegreen-widget" src="${widgetUrl}" width="480" height="240" style="border:1px solid #ccc"></iframe></body></html>`;
  const server = createServer((req, res) => {
    res.writeHead(req.url === "/" ? 200 : 404, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(req.url === "/" ? page : "");
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: `${origin}/`, origin, server };
}

/** The widget's entry document's headers through the preview route, to learn whether the host page may frame it. */
function entryHeaders(widgetUrl: string, edgeUrl: string, host: string | undefined, preview: string, timeoutMs: number): Promise<IncomingHttpHeaders> {
  const url = new URL("/", edgeUrl);
  const get = url.protocol === "https:" ? httpsGet : httpGet;
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { ...(host ? { host } : {}), "x-bluegreen-preview": preview }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.headers));
    });
    req.on("timeout", () => req.destroy(new Error(`${widgetUrl} did not answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

// The two in-page scripts are source text: they run in Chromium, not under this project's Node typings.
/** Installed in every frame before its own scripts: when the selector first matches, and the long tasks. */
function instrument(selector: string): string {
  return `(() => {
  const g = (window.__bluegreen = { render: null, longTaskMs: 0 });
  try {
    new PerformanceObserver((list) => list.getEntries().forEach((e) => (g.longTaskMs += e.duration))).observe({ type: "longtask", buffered: true });
  } catch (e) { /* no Long Tasks API: the metric stays 0 in both slots */ }
  const check = () => { if (g.render === null && document.querySelector(${JSON.stringify(selector)})) g.render = performance.now(); };
  new MutationObserver(check).observe(document, { childList: true, subtree: true, attributes: true });
})();`;
}

/** Read in the widget's frame after the load: times relative to its navigation start (Navigation/Resource Timing). */
const READ_METRICS = `(() => {
  const g = window.__bluegreen || { render: null, longTaskMs: 0 };
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const wait = (e) => Math.max(0, e.responseStart - e.requestStart);
  const beforeRender = resources.filter((r) => g.render === null || r.responseEnd <= g.render);
  const serverWaitMs = wait(nav) + Math.max(0, ...beforeRender.map(wait));
  const bytes = nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0);
  return { render: g.render, longTaskMs: g.longTaskMs, loadMs: nav.loadEventEnd - nav.startTime, serverWaitMs, bytes };
})()`;

async function withTimeout<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface LoadPlan {
  browser: Browser;
  hostUrl: string;
  widgetUrl: string;
  embedding: "iframe" | "top-level";
  preview: string;
  selector: string;
  timeoutMs: number;
  screenshot?: string;
}

/** One load in a fresh context (no cache, no cookies): what a first-time viewer's browser sees. */
async function loadOnce(plan: LoadPlan): Promise<LoadObservation> {
  const widgetOrigin = new URL(plan.widgetUrl).origin;
  const obs: LoadObservation = { errors: [], consoleErrors: [], failedRequests: [], rendered: false, metrics: null };
  // extraHTTPHeaders go to the host page's loopback server too: the token never leaves this machine's sockets, and
  // unlike page.route it leaves Chromium's network stack (timing, transfer sizes) untouched.
  // https://playwright.dev/docs/api/class-browser#browser-new-context-option-extra-http-headers
  const context: BrowserContext = await plan.browser.newContext({ extraHTTPHeaders: { "x-bluegreen-preview": plan.preview }, viewport: { width: 800, height: 400 } });
  try {
    await context.addInitScript({ content: instrument(plan.selector) });
    const page: Page = await context.newPage();
    page.setDefaultTimeout(plan.timeoutMs);
    page.on("pageerror", (e) => obs.errors.push(e.message.split("\n")[0]));
    page.on("console", (m) => {
      if (m.type() === "error" && !RESOURCE_CONSOLE_ERROR.test(m.text())) obs.consoleErrors.push(m.text().split("\n")[0]);
    });
    // A 5xx or a dropped connection ends the load at once (it is attempted again): no waiting for a render that the
    // edge, not the release, prevented.
    let markUnavailable = () => {};
    const unavailable = new Promise<false>((resolve) => (markUnavailable = () => resolve(false)));
    page.on("response", (r) => {
      if (r.status() < 400 || new URL(r.url()).origin !== widgetOrigin) return;
      obs.failedRequests.push({ url: new URL(r.url()).pathname, status: r.status(), reason: r.statusText() });
      if (r.status() >= 500) markUnavailable();
    });
    page.on("requestfailed", (r) => {
      if (new URL(r.url()).origin !== widgetOrigin) return;
      obs.failedRequests.push({ url: new URL(r.url()).pathname, status: 0, reason: r.failure()?.errorText ?? "failed" });
      markUnavailable();
    });
    const target = plan.embedding === "iframe" ? plan.hostUrl : plan.widgetUrl;
    await page.goto(target, { waitUntil: "load", timeout: plan.timeoutMs });
    const frame = plan.embedding === "iframe" ? page.frames().find((f) => f !== page.mainFrame() && f.url().startsWith(widgetOrigin)) : page.mainFrame();
    if (frame) {
      const rendered = frame
        .locator(plan.selector)
        .first()
        .waitFor({ state: "visible", timeout: plan.timeoutMs })
        .then(() => true, () => false);
      obs.rendered = await Promise.race([rendered, unavailable]);
      if (obs.failedRequests.some((r) => r.status === 0 || r.status >= 500)) return obs;
      await frame.waitForLoadState("load", { timeout: plan.timeoutMs }).catch(() => undefined);
      await page.waitForTimeout(SETTLE_MS);
      const m = await frame.evaluate<{ render: number | null; longTaskMs: number; loadMs: number; serverWaitMs: number; bytes: number }>(READ_METRICS).catch(() => undefined);
      if (m) obs.metrics = { loadMs: m.loadMs, renderMs: m.render ?? m.loadMs, serverWaitMs: m.serverWaitMs, bytes: m.bytes, longTaskMs: m.longTaskMs };
    }
    if (plan.screenshot) await page.screenshot({ path: plan.screenshot, timeout: plan.timeoutMs }).catch(() => undefined);
    return obs;
  } finally {
    await context.close().catch(() => undefined);
  }
}

/** Attempts per load before a load whose widget requests got a 5xx or no response counts as unavailable. */
const ATTEMPTS = 5;

/** One load, again while the edge answers 5xx or drops a connection: the gate judges content, not availability. */
async function loadJudgeable(plan: LoadPlan, perLoadMs: number): Promise<LoadObservation> {
  let obs: LoadObservation | undefined;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    obs = await withTimeout(`loading ${plan.preview.split(":")[1]}`, perLoadMs, loadOnce(plan)).catch(
      (err: unknown): LoadObservation => ({ errors: [], consoleErrors: [], failedRequests: [], rendered: false, metrics: null, loadError: firstLine(err) }),
    );
    const bad = obs.failedRequests.find((r) => r.status === 0 || r.status >= 500);
    if (!bad) return obs;
    obs.unavailable = `${bad.url} ${bad.status === 0 ? bad.reason : `status ${bad.status}`} on ${ATTEMPTS} attempts`;
  }
  return obs!;
}

/**
 * Loads the candidate (and the stable slot, in the same browser, alternating so that machine noise hits both) and
 * judges. Never throws for a bad input: no browser, a host page that does not load, a selector that never appears
 * each end as a finding; every wait has a timeout.
 */
export async function runBrowserGate(opts: BrowserGateOptions): Promise<BrowserGateResult> {
  const started = Date.now();
  const thresholds = { ...DEFAULT_THRESHOLDS, ...opts.thresholds };
  const edge = new URL(opts.edgeUrl);
  // *.localhost resolves to loopback in Chromium (https://chromium.googlesource.com/chromium/src/+/main/net/dns/README.md),
  // so the local edge's per-stack Host is a real origin: the browser sends the Host the edge selects the stack by.
  const widgetUrl = opts.host ? `${edge.protocol}//${opts.host}${edge.port ? `:${edge.port}` : ""}/` : new URL("/", edge).toString();
  mkdirSync(opts.outDir, { recursive: true });
  const result: BrowserGateResult = { verdict: "failed", findings: [], medians: {}, embedding: "iframe", browser: null, notes: [], screenshots: {}, report: path.join(opts.outDir, "browser-gate.json"), durationMs: 0 };
  const finish = () => {
    result.durationMs = Date.now() - started;
    writeFileSync(result.report, JSON.stringify(result, null, 2) + "\n");
    return result;
  };
  const perLoadMs = loadBoundMs(opts.timeoutMs);
  let host: Awaited<ReturnType<typeof startHostPage>> | undefined;
  let launched: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  try {
    try {
      launched = await withTimeout("launching the browser", launchBoundMs(opts.timeoutMs), launchBrowser(opts.timeoutMs * 2));
      result.browser = { executable: launched.executable, source: launched.source, version: launched.browser.version() };
    } catch (err) {
      result.findings.push({ kind: "browser", slot: null, message: `no browser to run the gate: ${firstLine(err)}` });
      return finish();
    }
    try {
      host = await startHostPage(widgetUrl);
    } catch (err) {
      result.findings.push({ kind: "host-page", slot: null, message: `the host page could not be served: ${firstLine(err)}` });
      return finish();
    }
    const forbidden = await entryHeaders(widgetUrl, opts.edgeUrl, opts.host, `${opts.previewToken}:${opts.candidate}`, opts.timeoutMs).then(
      (h) => framingForbidden(h, host!.origin),
      () => undefined,
    );
    if (forbidden) {
      // The stack's embedding.frameAncestors names customers' origins, not this loopback host page: an iframe would
      // show nothing at all, so the widget is loaded top-level, and its scripts, assets and timings are still judged.
      result.embedding = "top-level";
      result.notes.push(`the widget's responses forbid framing by ${host.origin} (${forbidden}): loaded top-level instead of in the host page's iframe`);
    }
    const slots: Slot[] = opts.stable ? [opts.candidate, opts.stable] : [opts.candidate];
    const runs = new Map<Slot, SlotRun>(slots.map((s) => [s, { slot: s, loads: [] }]));
    for (let i = 0; i < opts.loads; i++) {
      for (const slot of slots) {
        const screenshot = i === opts.loads - 1 ? path.join(opts.outDir, `${slot}.png`) : undefined;
        const plan: LoadPlan = { browser: launched.browser, hostUrl: host.url, widgetUrl, embedding: result.embedding, preview: `${opts.previewToken}:${slot}`, selector: opts.selector, timeoutMs: opts.timeoutMs, screenshot };
        runs.get(slot)!.loads.push(await loadJudgeable(plan, perLoadMs));
        if (screenshot && existsSync(screenshot)) result.screenshots[slot] = screenshot;
      }
    }
    const judged = judgeBrowserRun(runs.get(opts.candidate)!, opts.stable ? runs.get(opts.stable)! : null, thresholds);
    // The stable slot's own failures are not the candidate's, but a reader of the report wants them.
    const stableFindings = opts.stable ? judgeBrowserRun(runs.get(opts.stable)!, null, thresholds).findings : [];
    Object.assign(result, { ...judged, notes: [...result.notes, ...judged.notes, ...stableFindings.map((f) => `stable slot: ${f.message}`)] });
    return finish();
  } catch (err) {
    result.findings.push({ kind: "browser", slot: null, message: `the browser gate could not run: ${firstLine(err)}` });
    return finish();
  } finally {
    host?.server.close();
    host?.server.closeAllConnections();
    await launched?.browser.close().catch(() => undefined);
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0];
}

// ---- the rollout's view -------------------------------------------------------------------------------------------

export interface BrowserGateRequest {
  stack: string;
  release: string;
  candidate: Slot;
  /** Null on a stack's first release. */
  stable: Slot | null;
  previewToken: string;
  config: StackConfig;
}

/** Runs the gate for a rollout; null when it does not run (disabled in stack config, or no edge to load). */
export type BrowserGateRunner = (request: BrowserGateRequest) => Promise<BrowserGateResult | null>;

/** The default runner: a headless Chromium against the edge the rollout's prober reaches. A prober that is not an
 * HttpProber (a unit test's fake) has no edge a browser could load: the gate does not run. */
export function browserGateFor(prober: Prober, outRoot = path.join(tmpdir(), "bluegreen-browser-gate")): BrowserGateRunner {
  return async (request) => {
    const settings = request.config.verification.browserGate;
    if (!settings.enabled || !(prober instanceof HttpProber)) return null;
    // The gate loads the same URL and Host the probes use.
    const target: EdgeTarget = prober.target;
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    return runBrowserGate({
      edgeUrl: target.url,
      host: target.host,
      previewToken: request.previewToken,
      candidate: request.candidate,
      stable: request.stable,
      selector: settings.selector,
      loads: settings.loads,
      timeoutMs: settings.timeoutMs,
      thresholds: { maxRegression: settings.maxRegression },
      outDir: path.join(outRoot, request.stack.replace(/[^\w.-]/g, "_"), `${request.release}-${stamp}`),
    });
  };
}
