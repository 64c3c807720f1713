// `npm run bench`: rollout speed, time to restore, router cost, split accuracy and upload throughput, measured on
// the local cloud through the driver's own code. Prints a table and writes bench/results.json (gitignored).
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { embeddingSchema, otherSlot, viewerSettings, type Slot } from "../infra/config";
import { encodeRoutingRecord, sha256Hex } from "../infra/routing";
import { viewerRequestCode, viewerResponseCode } from "../infra/routerCode";
import { deploy } from "../automation/deploy";
import { RolledBackError } from "../automation/errors";
import {
  compileCloudFrontFunction,
  viewerRequestEvent,
  viewerResponseEvent,
  type CloudFrontEvent,
  type ViewerRequestInput,
} from "../automation/local/cloudfrontRuntime";
import { buildManifest, uploadRelease } from "../automation/releases";
import type { DeployReport, RollbackReport } from "../automation/rollout";
import { median, RecordingReporter, STACK, startBenchCloud, type BenchCloud } from "./support";
import { analysisFigures } from "./analysis";
import { launchBrowser, runBrowserGate } from "../automation/browserGate";

export interface Figure {
  name: string;
  median: number;
  min: number;
  max: number;
  unit: string;
  runs: number;
  /** Upper bound the figure must stay within. */
  target: number;
  /** Which statistic the target applies to (the worst case for split accuracy, the median elsewhere). */
  judged: "median" | "max";
  /** The target is a lower bound (detection rates). */
  atLeast?: boolean;
  met: boolean;
  note?: string;
}

function figure(name: string, values: number[], unit: string, target: number, opts: { judged?: "median" | "max"; note?: string } = {}): Figure {
  const judged = opts.judged ?? "median";
  const round = (v: number) => Math.round(v * 100) / 100;
  const f = { name, median: round(median(values)), min: round(Math.min(...values)), max: round(Math.max(...values)), unit, runs: values.length, target, judged };
  return { ...f, met: f[judged] <= target, ...(opts.note ? { note: opts.note } : {}) };
}

const ROLLOUTS = 6;
const RESTORES = 5;
const SPLIT_PROBES = 2000;
const ROUTER_RUNS = 9;
// Untimed runs first: --trace-opt shows the bench loop re-optimized as it meets the second function, and the second
// run still came out 7-60 percent slower than the later ones (five processes measured).
const ROUTER_WARMUP_RUNS = 3;
const ROUTER_PER_RUN = 20_000;
const ROUTER_GROUP = 100;
const UPLOAD_FILES = 1000;
const UPLOAD_RUNS = 3;
const STEPS = [10, 25, 50, 75, 100];
const CLI_CALLS = 30;

let releaseSeq = 0;
const nextRelease = () => `b${process.pid}-${++releaseSeq}`;

async function deployOnce(bench: BenchCloud, reporter: RecordingReporter): Promise<{ report?: DeployReport; rollback?: RollbackReport; wallMs: number }> {
  const release = nextRelease();
  const started = performance.now();
  try {
    const report = await deploy({ stack: STACK, artifact: bench.release(release), release, steps: STEPS, bakeMs: 0, json: false, dryRun: false }, reporter);
    return { report, wallMs: performance.now() - started };
  } catch (err) {
    if (!(err instanceof RolledBackError)) throw err;
    const rollback = reporter.events.flatMap((e) => (e.kind === "rollback" ? [e.rollback] : [])).at(-1);
    return { rollback, wallMs: performance.now() - started };
  }
}

/** step_overhead_ms and rollout_wall_ms: zero bake, minimal probes, the driver's own step timings. */
async function rollouts(bench: BenchCloud): Promise<Figure[]> {
  await bench.tuneRollout({ bakeSeconds: 0, probesPerStep: 10, minSamples: 5 });
  // The browser gate has its own figure (browser_gate_ms); these measure the control plane through the SDK path.
  await bench.tuneVerification({ browserGate: { enabled: false } });
  const overhead: number[] = [];
  const parts = { configMs: [] as number[], upMs: [] as number[], propagationMs: [] as number[] };
  const walls: number[] = [];
  const rollout: number[] = [];
  for (let i = 0; i < ROLLOUTS; i++) {
    const { report, wallMs } = await deployOnce(bench, new RecordingReporter());
    if (report?.result !== "succeeded") throw new Error(`bench rollout ${i + 1} did not succeed`);
    for (const s of report.steps) {
      overhead.push(s.timings.configMs + s.timings.upMs + s.timings.propagationMs);
      for (const k of Object.keys(parts) as (keyof typeof parts)[]) parts[k].push(s.timings[k]);
    }
    rollout.push(report.durationMs);
    walls.push(wallMs);
  }
  return [
    figure("step_overhead_ms", overhead, "ms", 1000, {
      note: `per step: config write + up + edge serving the new revision (StepReport.timings), 5 steps per rollout; medians: config ${median(parts.configMs)} ms, up ${median(parts.upMs)} ms, propagation ${median(parts.propagationMs)} ms`,
    }),
    figure("rollout_wall_ms", walls, "ms", 5000, {
      note: `whole deploy() call: validate, upload, stage, verify candidate, 5 steps, settle; runRollout alone: median ${Math.round(median(rollout))} ms; browser gate off (with it on, add browser_gate_ms)`,
    }),
  ];
}

/** restore_ms: the candidate starts failing once the first step has passed, so the second step's probes fail. */
async function restores(bench: BenchCloud): Promise<Figure> {
  const values: number[] = [];
  for (let i = 0; i < RESTORES; i++) {
    const candidate = otherSlot((await (await bench.cloud.stack(STACK)).getAllConfig())["picasso-widget:stable"].value as Slot);
    const reporter = new RecordingReporter((e) => {
      if (e.kind === "step" && e.step.index === 0) bench.cloud.setFault(STACK, candidate, { errorRate: 1, latencyMs: 0 });
    });
    const { rollback } = await deployOnce(bench, reporter);
    bench.cloud.clearFaults(STACK);
    if (rollback === undefined || rollback.step !== 1) throw new Error(`bench restore ${i + 1}: expected a rollback at the second step, got ${JSON.stringify(rollback)}`);
    values.push(rollback.restoreMs);
  }
  return figure("restore_ms", values, "ms", 5000, { note: "RollbackReport.restoreMs: from the failing judgement (end of the step's probe window) to 50 fresh viewers verified on the stable slot" });
}

/** split_error_pp: a rollout whose every step probes SPLIT_PROBES fresh viewers through the edge. */
async function split(bench: BenchCloud): Promise<Figure> {
  await bench.tuneRollout({ bakeSeconds: 0, probesPerStep: SPLIT_PROBES, minSamples: 5 });
  const { report } = await deployOnce(bench, new RecordingReporter());
  if (report?.result !== "succeeded") throw new Error("bench split rollout did not succeed");
  const gaps = report.steps.map((s) => {
    if (s.viewerSamples !== SPLIT_PROBES) throw new Error(`step ${s.index + 1}: ${s.viewerSamples} viewer samples, expected ${SPLIT_PROBES}`);
    return Math.abs(s.weight - s.observedShare);
  });
  await bench.tuneRollout({ bakeSeconds: 0, probesPerStep: 10, minSamples: 5 });
  return figure("split_error_pp", gaps, "pp", 3, { judged: "max", note: `|configured - observed| new-slot share of ${SPLIT_PROBES} fresh viewers at each of ${STEPS.join(", ")}%` });
}

/** A browser's request headers, in CloudFront's shape. */
function viewerInput(i: number, requestId: string): ViewerRequestInput & { requestId: string } {
  // One page view as a browser makes it (the entry point, answered with a redirect to its release; the document and
  // its assets under that release's URL; a path-absolute reference the router serves by the Referer), plus the
  // health path the driver probes.
  const paths = ["/", "/_r/blue/1.4.2/", "/_r/blue/1.4.2/assets/widget.2af1d9e169.js", "/_r/blue/1.4.2/assets/widget.7c3e90a1b4.css", "/favicon.ico", "/version.json"];
  const returning = i % 3 !== 0;
  const uri = paths[i % paths.length];
  return {
    uri,
    requestId,
    headers: {
      host: { value: "d111111abcdef8.cloudfront.net" },
      ...(uri === "/favicon.ico" ? { referer: { value: "https://d111111abcdef8.cloudfront.net/_r/blue/1.4.2/" } } : {}),
      "user-agent": { value: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36" },
      accept: { value: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" },
      "accept-encoding": { value: "gzip, deflate, br" },
      "accept-language": { value: "en-GB,en;q=0.9" },
      ...(i % 50 === 0 ? { "x-bluegreen-preview": { value: "bench-preview-token-0123456789:green" } } : {}),
    },
    cookies: returning ? { "bg-bucket": { value: String(i % 100) }, _ga: { value: "GA1.1.1234567890.1700000000" } } : {},
  };
}

/**
 * Request ids shaped like CloudFront's (56 URL-safe base64 characters, as `newRequestId` makes them), cut from one
 * random buffer per group: a Buffer per id would leave an ArrayBuffer per event for V8's background sweeper to free
 * while the functions are timed, and this process's CPU time would count it.
 */
function requestIds(n: number): string[] {
  const bytes = randomBytes(42 * n);
  return Array.from({ length: n }, (_, i) => bytes.toString("base64url", 42 * i, 42 * (i + 1)));
}

interface Timed {
  run: (e: CloudFrontEvent) => Promise<unknown>;
  build: (i: number, requestId: string) => CloudFrontEvent;
  cpuNs: number[];
  wallNs: number[];
}

/**
 * Per-invocation cost in the shim. Each run invokes one function ROUTER_PER_RUN times on fresh events, built in groups
 * of ROUTER_GROUP outside the timed part; the functions take turns run by run, so both see the same machine. Small
 * groups keep the events the bench holds alive to a few hundred: built all at once, 20,000 live events made every
 * young-generation collection in the timed part copy them, which is the bench's cost, not the function's (it doubled
 * the trivial handler's figure). Judged on elapsed time per invocation, the measure CloudFront's own compute
 * utilization uses ("the amount of time that the function took to run", API_TestResult.html in the CloudFront API
 * reference). The process's CPU time goes in the note: it runs higher, because it also counts V8's helper threads
 * (parallel scavenging, concurrent compilation) working on the other core at the same time. (Main-thread CPU time from
 * /proc/thread-self/schedstat was tried: it advances only at scheduler ticks, far too coarse for a group of a few
 * hundred microseconds.)
 */
async function timeFunctions(functions: Timed[]): Promise<void> {
  for (let r = 0; r < ROUTER_WARMUP_RUNS + ROUTER_RUNS; r++) {
    for (const f of functions) {
      let cpuUs = 0;
      let wall = 0n;
      for (let g = 0; g < ROUTER_PER_RUN / ROUTER_GROUP; g++) {
        const ids = requestIds(ROUTER_GROUP);
        const events = ids.map((id, i) => f.build(g * ROUTER_GROUP + i, id));
        const wallStart = process.hrtime.bigint();
        const cpu = process.cpuUsage();
        for (const e of events) await f.run(e);
        const used = process.cpuUsage(cpu);
        wall += process.hrtime.bigint() - wallStart;
        cpuUs += used.user + used.system;
      }
      if (r < ROUTER_WARMUP_RUNS) continue;
      f.cpuNs.push((cpuUs * 1000) / ROUTER_PER_RUN);
      f.wallNs.push(Number(wall) / ROUTER_PER_RUN);
    }
  }
}

async function router(): Promise<Figure[]> {
  const record = encodeRoutingRecord({ rev: 7, stable: "blue", weights: { blue: 75, green: 25 }, releases: { blue: "1.4.2", green: "1.5.0" }, preview: sha256Hex("bench-preview-token-0123456789") });
  const viewer = viewerSettings(embeddingSchema.parse({}));
  const requestCode = viewerRequestCode({ slot: "blue", release: "1.4.2" }, viewer);
  const responseCode = viewerResponseCode(viewer);
  const kvs = (key: string) => (key === "routing" ? record : undefined);
  const request = compileCloudFrontFunction(requestCode, { kvs: () => kvs, filename: "viewer-request.js" });
  const response = compileCloudFrontFunction(responseCode, { filename: "viewer-response.js" });
  const requestNs: Timed = { run: (e) => request.run(e), build: (i, id) => viewerRequestEvent(viewerInput(i, id)), cpuNs: [], wallNs: [] };
  const responseNs: Timed = {
    run: (e) => response.run(e),
    build: (i, id) =>
      viewerResponseEvent(viewerInput(i, id), {
        statusCode: 200,
        headers: {
          "content-type": { value: "text/html; charset=utf-8" },
          "cache-control": { value: "public, max-age=31536000, immutable" },
          etag: { value: '"3f9a1c2e5b7d"' },
          "x-amz-meta-slot": { value: i % 4 === 0 ? "green" : "blue" },
          "x-amz-meta-release": { value: i % 4 === 0 ? "1.5.0" : "1.4.2" },
        },
      }),
    cpuNs: [],
    wallNs: [],
  };
  await timeFunctions([requestNs, responseNs]);
  const note = (t: Timed) =>
    `elapsed time per invocation, mean over each of ${ROUTER_RUNS} runs of ${ROUTER_PER_RUN} (events built ${ROUTER_GROUP} at a time, untimed); process CPU time median ${Math.round(median(t.cpuNs))} ns`;
  return [
    figure("router_request_ns", requestNs.wallNs, "ns", 2000, { note: note(requestNs) }),
    figure("router_response_ns", responseNs.wallNs, "ns", 2000, { note: note(responseNs) }),
    figure("router_request_bytes", [Buffer.byteLength(requestCode, "utf8")], "bytes", 4096, { note: "rendered viewer-request code (fallback and viewer settings baked in)" }),
    figure("router_response_bytes", [Buffer.byteLength(responseCode, "utf8")], "bytes", 4096, { note: "rendered viewer-response code (viewer settings baked in)" }),
  ];
}

/** A 1,000-file release shaped like a widget build: HTML entry points, fingerprinted JS/CSS, JSON, images. */
function generateRelease(dir: string): void {
  const kinds = [".js", ".css", ".json", ".svg", ".html"];
  writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>picasso-widget</title>\n");
  for (let i = 1; i < UPLOAD_FILES; i++) {
    const ext = kinds[i % kinds.length];
    const body = `/* file ${i} */\n` + "x".repeat(200 + ((i * 7919) % 8000));
    const name = ext === ".js" || ext === ".css" ? `chunk-${i}.${sha256Hex(String(i)).slice(0, 10)}${ext}` : `file-${i}${ext}`;
    writeFileSync(path.join(dir, name), body);
  }
}

async function uploads(bench: BenchCloud): Promise<Figure[]> {
  const dir = mkdtempSync(path.join(tmpdir(), "bluegreen-bench-upload-"));
  try {
    generateRelease(dir);
    const bucket = ((await (await bench.cloud.stack(STACK)).outputs()).bucketNames.value as Record<string, string>).green;
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < UPLOAD_RUNS; i++) {
      const { manifest, bodies } = await buildManifest(dir, `upload-${i}`);
      let t = performance.now();
      const first = await uploadRelease(bench.cloud.s3, { bucket, slot: "green" }, manifest, bodies);
      cold.push(performance.now() - t);
      t = performance.now();
      const again = await uploadRelease(bench.cloud.s3, { bucket, slot: "green" }, manifest, bodies);
      warm.push(performance.now() - t);
      if (first.uploaded !== UPLOAD_FILES || again.uploaded !== 0) throw new Error(`upload ${i}: ${first.uploaded} then ${again.uploaded} files uploaded`);
    }
    return [
      figure("upload_cold_ms", cold, "ms", 5000, { note: `${UPLOAD_FILES} files (${Math.round(fileBytes(dir) / 1024)} KiB) to a new release prefix, 16 PUTs in flight` }),
      figure("upload_warm_ms", warm, "ms", 1000, { note: "the same release again: every file skipped by the manifest" }),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fileBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
}

function table(figures: Figure[]): string {
  const rows = figures.map((f) => [f.name, String(f.median), String(f.min), String(f.max), f.unit, String(f.runs), `${f.judged === "max" ? "max" : "median"} ${f.atLeast ? "≥" : "≤"} ${f.target}`, f.met ? "yes" : "NO"]);
  const head = ["figure", "median", "min", "max", "unit", "runs", "target", "met"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i >= 1 && i <= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/**
 * One Pulumi CLI stand-in invocation as the SDK makes it (a process start, one loopback request to the engine, the
 * answer parsed): `stack history --page-size 1`, which the SDK issues after every `up` (Stack.info()). A rollout step
 * makes five such calls: config set-all, up, two stack outputs, history.
 */
async function cliCalls(bench: BenchCloud): Promise<Figure> {
  const stack = await bench.cloud.stack(STACK);
  const ms: number[] = [];
  for (let i = 0; i < CLI_CALLS; i++) {
    const t0 = performance.now();
    await stack.history(1, 1);
    ms.push(performance.now() - t0);
  }
  return figure("cli_call_ms", ms, "ms", 150, { note: "median of one `pulumi stack history --page-size 1` through the SDK and the stand-in" });
}

const GATE_RUNS = 3;

/**
 * chromium_cold_start_ms: finding and launching the browser to a ready CDP connection (the first run on a fresh machine
 * includes unpacking @sparticuz/chromium to /tmp). browser_gate_ms: the whole gate as a rollout runs it, both slots,
 * 3 loads each, in a browser of its own.
 */
async function browserGate(bench: BenchCloud): Promise<Figure[]> {
  const cold: number[] = [];
  for (let i = 0; i < GATE_RUNS; i++) {
    const t0 = performance.now();
    const { browser } = await launchBrowser(30_000);
    cold.push(performance.now() - t0);
    await browser.close();
  }
  const config = await (await bench.cloud.stack(STACK)).getAllConfig();
  const stable = config["picasso-widget:stable"].value as Slot;
  const out = mkdtempSync(path.join(tmpdir(), "bluegreen-bench-gate-"));
  const gate: number[] = [];
  const render: Record<Slot, number[]> = { blue: [], green: [] };
  try {
    for (let i = 0; i < GATE_RUNS; i++) {
      const r = await runBrowserGate({ edgeUrl: bench.cloud.url, host: bench.cloud.host(STACK), previewToken: config["picasso-widget:previewToken"]?.value ?? "", candidate: otherSlot(stable), stable, selector: ".picasso-widget", loads: 3, timeoutMs: 15_000, outDir: out });
      if (r.verdict !== "passed") throw new Error(`bench browser gate ${i + 1}: ${r.findings.map((f) => f.message).join("; ")}`);
      gate.push(r.durationMs);
      for (const slot of ["blue", "green"] as const) render[slot].push(r.medians[slot]?.renderMs ?? NaN);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  return [
    figure("chromium_cold_start_ms", cold, "ms", 2000, { note: "launchBrowser(): find the executable (machine's or @sparticuz/chromium's) and launch it to a ready connection" }),
    figure("browser_gate_ms", gate, "ms", 5000, { note: `runBrowserGate(): launch, host page, 3 loads of each slot (candidate by preview), judge, screenshots; median render ${median(render.blue)} / ${median(render.green)} ms (blue / green)` }),
  ];
}

async function main(): Promise<void> {
  const started = Date.now();
  const figures: Figure[] = [];
  // The router microbenchmark first, while nothing else of ours runs.
  figures.push(...(await router()));
  figures.push(...analysisFigures());
  const bench = await startBenchCloud("bench");
  try {
    const boot = nextRelease();
    await deploy({ stack: STACK, artifact: bench.release(boot), release: boot, bakeMs: 0, json: false, dryRun: false }, new RecordingReporter());
    figures.push(await cliCalls(bench));
    figures.push(...(await rollouts(bench)));
    figures.push(await restores(bench));
    figures.push(await split(bench));
    figures.push(...(await browserGate(bench)));
    figures.push(...(await uploads(bench)));
  } finally {
    await bench.close();
  }
  const results = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, loadAverage: loadavg(), durationMs: Date.now() - started, figures };
  writeFileSync(path.join(__dirname, "results.json"), JSON.stringify(results, null, 2) + "\n");
  console.log(table(figures));
  console.log(`\n${figures.filter((f) => f.met).length} of ${figures.length} targets met; bench/results.json written (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
