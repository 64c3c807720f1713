// Read-only commands: `status`, `history` and `verify`. They never change the stack.
import * as http from "node:http";
import * as https from "node:https";
import { otherSlot, type Slot, type StackConfig } from "../infra/config";
import { formatAuditRecord, type AuditRecord } from "./audit";
import { OperatorNeededError } from "./errors";
import { describeInProgress, newestSucceeded, readHistory, updateInProgress } from "./history";
import { describeHolder, leaseStoreOf, type LeaseView } from "./lease";
import { viewing, viewingLine, type Viewing } from "./open";
import type { Reporter } from "./output";
import type { DeploymentStack, OutputMap, UpdateSummary } from "./port";
import { HttpProber, probeMany, SECURITY_HEADERS } from "./prober";
import { probeIntegrity, ROUTING_PROBE_PATH, verifyAllOn, systemClock } from "./rollout";
import { parseConfigMap, readLiveConfig, type LiveConfig } from "./stackConfig";
import { edgeOf, faultNote, openTarget } from "./targets";

/**
 * What the stack runs: the config of its newest successful update (a failed one records a config it only attempted),
 * read without syncing the stack file (a CI checkout's file is older than what earlier runs deployed); the file
 * itself only before the first successful update.
 */
async function deployedConfig(stack: DeploymentStack, history: readonly UpdateSummary[]): Promise<LiveConfig> {
  const last = newestSucceeded(history);
  return last ? parseConfigMap(last.config, stack.name) : readLiveConfig(stack);
}

/** Sample size of fresh viewers `status` asks when the edge's routing differs from the config. */
const EDGE_SAMPLE = 20;

/** What the edge serves: the routing revision it reads and where a sample of fresh viewers land. */
async function edgeServes(prober: HttpProber): Promise<{ revision: number | null; viewers: Record<string, number> }> {
  const res = await prober.probe({ path: ROUTING_PROBE_PATH });
  let revision: number | null = null;
  try {
    const rev = (JSON.parse(res.body.toString("utf8")) as { rev?: unknown }).rev;
    if (typeof rev === "number") revision = rev;
  } catch {
    revision = null;
  }
  const viewers: Record<string, number> = {};
  const sample = await probeMany(prober, Array.from({ length: EDGE_SAMPLE }, () => ({ path: "/version.json" })), { concurrency: 4, spreadMs: 0, sleep: systemClock.sleep });
  for (const r of sample) {
    const where = r.slot ? `${r.slot}/${r.release ?? "?"}` : `status ${r.status}`;
    viewers[where] = (viewers[where] ?? 0) + 1;
  }
  return { revision, viewers };
}

export interface RolloutState {
  state: "idle" | "in-progress" | "interrupted";
  release?: string;
  phase?: string;
  weight?: number;
  /** 1-based step in flight, of `steps`. */
  step?: number;
  steps?: number;
  lastVerdict?: string;
  /** Time left in the bake in flight. */
  bakeLeftMs?: number;
  holder?: string;
  /** Set when someone ran `bluegreen abort` and the holder is reverting. */
  abortedBy?: string;
}

export interface StatusReport {
  stack: string;
  stable: Slot;
  slots: Record<Slot, { release: string | null }>;
  weights: Record<Slot, number>;
  revision: number;
  rollout: RolloutState;
  /** The newest update of any result; an update in progress has no endTime. */
  lastUpdate: { version: number; result: string; message: string; startTime: string; endTime: string | null } | null;
  /** Where to see it (once the stack has a distribution). */
  viewer?: Viewing;
  /** Set when the edge does not serve the routing revision of the config: what it serves instead. */
  edge?: { revision: number | null; viewers: Record<string, number> };
}

/** A rollout as the stack's lease tells it: live (in progress anywhere), expired with a journal (interrupted), or none. */
function rolloutOf(view: LeaseView, now = Date.now()): RolloutState {
  if (view.state === "free" || (view.state === "expired" && view.journal === undefined)) return { state: "idle" };
  const j = view.journal;
  const bakeLeftMs = j?.bakeEndsAt !== undefined && view.state === "live" ? Math.max(0, Date.parse(j.bakeEndsAt) - now) : undefined;
  return {
    state: view.state === "live" ? "in-progress" : "interrupted",
    ...(j ? { release: j.release, phase: j.phase, weight: j.weight, steps: j.steps.length } : {}),
    ...(j && j.step >= 0 ? { step: j.step + 1 } : {}),
    ...(j?.lastVerdict ? { lastVerdict: j.lastVerdict } : {}),
    ...(bakeLeftMs !== undefined ? { bakeLeftMs } : {}),
    holder: describeHolder(view.holder),
    ...(view.state === "live" && view.abort ? { abortedBy: view.abort.by } : {}),
  };
}

/** "rollout in-progress: 3.0.0 shifting 25% (step 2 of 5), last verdict passed, bake 4 s left, by …". */
function rolloutLine(r: RolloutState, stack: string): string {
  if (r.state === "idle") return "no rollout in progress";
  const parts = [
    r.release,
    r.phase,
    r.weight !== undefined ? `${r.weight}%` : undefined,
    r.step !== undefined ? `(step ${r.step} of ${r.steps})` : undefined,
    r.lastVerdict ? `last verdict ${r.lastVerdict}` : undefined,
    r.bakeLeftMs !== undefined ? `bake ${Math.ceil(r.bakeLeftMs / 1000)} s left` : undefined,
    r.abortedBy ? `aborted by ${r.abortedBy}` : undefined,
    r.holder ? `by ${r.holder}` : undefined,
  ];
  return `rollout ${r.state}: ${parts.filter((p) => p !== undefined).join(" ")}${r.state === "interrupted" ? `; run: bluegreen rollback --stack ${stack}` : ""}`;
}

/** How often `status --watch` reads the lease. */
const WATCH_MS = 1000;

export async function status(stackName: string, reporter: Reporter, opts: { watch?: boolean } = {}): Promise<StatusReport> {
  const target = await openTarget(stackName);
  try {
    const { stack } = target;
    const store = await leaseStoreOf(target);
    const view = async (): Promise<LeaseView> => (store ? store.view() : { state: "free" });
    if (opts.watch) {
      // Follows the rollout (from any machine) through its lease until it is no longer in progress; one line per change.
      let printed = "";
      // The line for its end is the status printed below.
      for (let r = rolloutOf(await view()); r.state === "in-progress"; r = rolloutOf(await view())) {
        const line = rolloutLine(r, stack.name);
        if (line !== printed) reporter.emit({ kind: "info", message: line });
        printed = line;
        await new Promise((resolve) => setTimeout(resolve, WATCH_MS));
      }
    }
    const history = await readHistory(stack);
    const { config } = await deployedConfig(stack, history);
    let rollout = rolloutOf(await view());
    const last = history[0];
    const open = updateInProgress(history);
    if (open && rollout.state === "idle") rollout = { state: "in-progress", phase: describeInProgress(open) };
    const report: StatusReport = {
      stack: stack.name,
      stable: config.stable,
      slots: { blue: { release: config.slots.blue.release ?? null }, green: { release: config.slots.green.release ?? null } },
      weights: config.weights,
      revision: config.revision,
      rollout,
      lastUpdate: last ? { version: last.version, result: last.result, message: last.message, startTime: new Date(last.startTime).toISOString(), endTime: last.endTime ? new Date(last.endTime).toISOString() : null } : null,
    };
    const outputs = await stack.outputs();
    if (outputs.distributionDomain !== undefined) {
      report.viewer = viewing(stack.name, edgeOf(target, outputs), config);
      const prober = new HttpProber(edgeOf(target, outputs));
      try {
        const edge = await edgeServes(prober);
        if (edge.revision !== config.revision) report.edge = edge;
      } finally {
        prober.close();
      }
    }
    const idle = otherSlot(config.stable);
    const lines = [
      `stack ${report.stack}: stable ${config.stable} serves ${config.slots[config.stable].release ?? "(nothing)"} at ${config.weights[config.stable]}%; ${idle} holds ${config.slots[idle].release ?? "(nothing)"} at ${config.weights[idle]}%`,
      rolloutLine(rollout, stack.name),
    ];
    if (report.viewer) lines.push(viewingLine(report.viewer));
    if (faultNote(target) !== "") lines.push(faultNote(target).trim());
    if (report.edge) {
      const viewers = Object.entries(report.edge.viewers).map(([where, n]) => `${n} on ${where}`).join(", ");
      lines.push(`the edge differs from the config: it reads routing revision ${report.edge.revision ?? "(none)"}, not ${config.revision}; ${EDGE_SAMPLE} fresh viewers: ${viewers}`);
    }
    reporter.finish(report, lines.join("\n\n"), lines.join("\n"));
    return report;
  } finally {
    await target.close();
  }
}

export async function history(stackName: string, reporter: Reporter): Promise<{ stack: string; updates: object[]; audit: AuditRecord[] }> {
  const target = await openTarget(stackName);
  try {
    // Secrets are read only to parse each update's config (a masked token would not parse); none is printed.
    const updates = (await readHistory(target.stack)).map((u) => {
      let routing = "";
      try {
        const c = parseConfigMap(u.config, stackName).config;
        routing = `stable ${c.stable}; blue ${c.weights.blue}% ${c.slots.blue.release ?? "-"} / green ${c.weights.green}% ${c.slots.green.release ?? "-"}; rev ${c.revision}`;
      } catch {
        routing = "(config not readable)";
      }
      return { version: u.version, result: u.result, message: u.message, startTime: new Date(u.startTime).toISOString(), endTime: u.endTime ? new Date(u.endTime).toISOString() : null, routing };
    });
    const audit = (await target.audit.store.readLines()).map((l) => JSON.parse(l) as AuditRecord);
    const text = [
      `updates of ${stackName} (newest first):`,
      ...updates.map((u) => `  v${u.version} ${u.endTime ?? `(since ${u.startTime})`} ${u.result.padEnd(11)} ${u.routing}  ${u.message}`),
      `audit log (${target.audit.store.location}):`,
      ...audit.map((r) => `  ${formatAuditRecord(r)}`),
    ].join("\n");
    const report = { stack: stackName, updates, audit };
    reporter.finish(report, "```\n" + text + "\n```", text);
    return report;
  } finally {
    await target.close();
  }
}

/** Verifies the stable slot takes all viewers, or (with --slot) that a slot passes its checks via the preview route. */
export async function verify(opts: { stack: string; slot?: Slot }, reporter: Reporter): Promise<object> {
  const target = await openTarget(opts.stack);
  const problems: string[] = [];
  let prober: HttpProber | undefined;
  let config: StackConfig;
  let viewer: Viewing;
  try {
    const deployed = await deployedConfig(target.stack, await readHistory(target.stack));
    config = deployed.config;
    const { previewToken } = deployed;
    const outputs = await target.stack.outputs();
    const edge = edgeOf(target, outputs);
    viewer = viewing(target.stack.name, edge, config);
    prober = new HttpProber(edge);
    // What a security review checks on AWS. The local edge has no TLS and s3rver enforces no bucket policy, so
    // there these two checks would prove nothing and are not run (see automation/local/edge.ts).
    if (!edge.local) problems.push(...(await awsExposureProblems(outputs, config.slots[config.stable].release, deployed.map["aws:region"]?.value ?? "us-east-1")));
    if (opts.slot === undefined) {
      await verifyAllOn({ prober, clock: systemClock }, config.stable, config.slots[config.stable].release ?? "", Math.max(config.rollout.minSamples, 50), config.verification.healthPath, config.rollout).catch((e: Error) => problems.push(e.message));
    }
    const slot = opts.slot ?? config.stable;
    const preview = previewToken ? { token: previewToken, slot } : undefined;
    // Smoke checks judge content, as the rollout's do: a 5xx that names no slot is retried, not reported (verifyAllOn
    // above judges availability, against the stack's error limit).
    const checks = await Promise.all(config.verification.smoke.map((c) => probeIntegrity({ prober: prober!, clock: systemClock }, { path: c.path, preview, follow: true })));
    checks.forEach((res, i) => {
      const c = config.verification.smoke[i];
      if (res.status !== c.status) problems.push(`smoke ${c.path} on ${slot}: status ${res.status}, expected ${c.status}`);
      else if (c.contains && !res.body.toString("utf8").includes(c.contains)) problems.push(`smoke ${c.path} on ${slot}: body lacks ${JSON.stringify(c.contains)}`);
      if (res.slot !== slot) problems.push(`smoke ${c.path}: served by ${res.slot ?? "no slot"}, expected ${slot}`);
      if (config.verification.securityHeaders && (res.missingHeaders?.length ?? 0) > 0) problems.push(`${c.path} lacks ${res.missingHeaders!.join(", ")} (expected ${SECURITY_HEADERS.join(", ")})`);
    });
  } finally {
    prober?.close();
    await target.close();
  }
  const report = { stack: opts.stack, slot: opts.slot ?? config.stable, ok: problems.length === 0, problems, viewer };
  reporter.emit({ kind: "info", message: viewingLine(viewer) });
  reporter.finish(report, problems.length === 0 ? "All checks passed." : problems.map((p) => `- ${p}`).join("\n"), problems.length === 0 ? `${report.slot} passed every check${faultNote(target)}` : problems.join("\n"));
  if (problems.length > 0) throw new OperatorNeededError(`verification of ${opts.stack} failed: ${problems[0]}${faultNote(target)}`);
  return report;
}

/** Status of a plain, anonymous GET (no redirects followed, no credentials). */
function anonymousGet(url: string): Promise<{ status: number; location?: string }> {
  const get = url.startsWith("https:") ? https.get : http.get;
  return new Promise((resolve) => {
    const req = get(url, { timeout: 10_000 }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, location: res.headers.location });
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", () => resolve({ status: 0 }));
  });
}

/**
 * Plain HTTP must redirect to HTTPS (viewer protocol policy redirect-to-https answers 301), and no object may be
 * readable straight from an origin bucket: only CloudFront, through OAC, may read it.
 * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-https-viewers-to-cloudfront.html
 * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html
 */
async function awsExposureProblems(outputs: OutputMap, stableRelease: string | undefined, region: string): Promise<string[]> {
  const problems: string[] = [];
  const domain = String(outputs.domain?.value ?? outputs.distributionDomain?.value);
  const plain = await anonymousGet(`http://${domain}/`);
  if (plain.status !== 301 || !plain.location?.startsWith("https://")) problems.push(`http://${domain}/ answered ${plain.status}, expected a 301 redirect to https`);
  const buckets = (outputs.bucketNames?.value ?? {}) as Record<Slot, string>;
  for (const slot of ["blue", "green"] as const) {
    const key = stableRelease ? `${slot}/${stableRelease}/index.html` : "index.html";
    // The regional endpoint: the global one redirects for buckets outside us-east-1. Only an explicit 403 passes.
    const direct = await anonymousGet(`https://${buckets[slot]}.s3.${region}.amazonaws.com/${key}`);
    if (direct.status !== 403) problems.push(`${buckets[slot]} answered ${direct.status || "nothing"} to an anonymous read of ${key}, expected 403 (only CloudFront may read it)`);
  }
  return problems;
}
