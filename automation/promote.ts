// `bluegreen promote --from S1 --to S2`: ship into S2 exactly the release S1's stable slot serves to every viewer,
// after S2's approval gate. The bytes are read from S1's bucket and checked against the release manifest's SHA-256s,
// uploaded through the same path as a deploy (S1 and S2 may live in different AWS accounts, where CopyObject between
// them would need cross-account bucket policies), re-read from S2's bucket and checked again before traffic moves.
import type { Slot, StackConfig } from "../infra/config";
import { requireApprovals, type Approver } from "./approvals";
import { shipRelease } from "./deploy";
import { UsageError } from "./errors";
import { readHistory } from "./history";
import { describeJournal, leaseStoreOf } from "./lease";
import type { Reporter } from "./output";
import { HttpProber } from "./prober";
import { manifestKey, readManifest, readRelease, type Manifest } from "./releases";
import { systemClock, verifyAllOn, type DeployReport } from "./rollout";
import { parseConfigMap } from "./stackConfig";
import { actor, edgeOf, openTarget, type LocalCloud, type Target } from "./targets";

export interface PromoteOptions {
  from: string;
  to: string;
  /** `--approve role=login` values; accepted for local stacks only. */
  approve: readonly string[];
  /** Where the GitHub run's variables are read from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** A local cloud both stacks run on (a test, the demo); by default one is started or joined. */
  cloud?: LocalCloud;
}

/** The release a source stack serves to every viewer, with its bytes checked against its manifest. */
export interface ServedRelease {
  stack: string;
  slot: Slot;
  release: string;
  manifest: Manifest;
  bodies: Map<string, Buffer>;
}

export async function promote(opts: PromoteOptions, reporter: Reporter): Promise<DeployReport | undefined> {
  reporter.summary.note({ stack: opts.to, from: opts.from });
  if (opts.from === opts.to) throw new UsageError(`--to = ${JSON.stringify(opts.to)}: expected a stack other than --from`);
  const source = await openTarget(opts.from, { cloud: opts.cloud, flag: "--from" });
  try {
    const target = await openTarget(opts.to, { cloud: opts.cloud ?? source.local, create: true, flag: "--to" });
    try {
      const served = await servedRelease(source, reporter);
      return await shipRelease(
        target,
        {
          action: "promote",
          manifest: served.manifest,
          bodies: served.bodies,
          subject: `--from = ${JSON.stringify(opts.from)} (release ${served.release})`,
          proveUpload: true,
          beforeChange: async (config) => {
            const details = await passGate(target, config, served, opts);
            if (details.approvers) reporter.summary.note({ approvers: details.approvers });
            return details;
          },
        },
        reporter,
      );
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/**
 * What a source stack serves, or a UsageError (nothing changed) unless: no rollout is in flight or interrupted, its
 * last update succeeded, its last rollout was not rolled back, that update's config has the stable slot at 100
 * percent, the edge serves that slot's release to every fresh viewer, and its objects match the release manifest.
 */
async function servedRelease(source: Target, reporter: Reporter): Promise<ServedRelease> {
  const { stack } = source;
  const refuse = (expected: string) => new UsageError(`--from = ${JSON.stringify(stack.name)}: expected ${expected}`);
  const lease = await (await leaseStoreOf(source))?.view();
  if (lease?.state === "live" || (lease?.state === "expired" && lease.journal)) {
    const what = lease.journal ? `its rollout of ${describeJournal(lease.journal)} is ${lease.state === "live" ? "in progress" : "unfinished"}` : "a rollout is starting";
    throw refuse(`a settled stack; ${what}; see: bluegreen status --stack ${stack.name}`);
  }
  const last = (await readHistory(stack)).find((u) => u.kind === "update");
  if (!last) throw refuse("a stack that serves a release; it has never been deployed");
  if (last.result !== "succeeded") throw refuse(`a stack whose last update succeeded; update ${last.version} ${last.result} (${last.message})`);
  // A revert's own `up` succeeds: the audit log is what says the last rollout was rolled back.
  const lastRollout = (await source.audit.read()).filter((r) => r.action !== "approval").at(-1);
  if (lastRollout?.action === "revert") {
    throw refuse(`a stack whose last rollout succeeded; the rollout of ${lastRollout.release ?? "?"} was rolled back at ${lastRollout.time} (${lastRollout.reasons.join("; ")})`);
  }

  const { config } = parseConfigMap(last.config, stack.name);
  const slot = config.stable;
  const release = config.slots[slot].release;
  if (release === undefined || config.weights[slot] !== 100) {
    throw refuse(`its stable slot to serve one release at 100 percent; stable ${slot} serves ${release ?? "nothing"} at ${config.weights[slot]}%`);
  }
  const outputs = await stack.outputs();
  const prober = new HttpProber(edgeOf(source, outputs));
  try {
    await verifyAllOn({ prober, clock: systemClock }, slot, release, Math.max(config.rollout.minSamples, 50), config.verification.healthPath, config.rollout);
  } catch (err) {
    throw refuse(`${slot} to serve ${release} to every viewer: ${(err as Error).message}`);
  } finally {
    prober.close();
  }

  const bucket = (outputs.bucketNames?.value as Record<Slot, string> | undefined)?.[slot];
  if (bucket === undefined) throw refuse("a stack with a bucketNames output");
  const manifest = await readManifest(source.s3, bucket, release);
  if (manifest?.release !== release) throw refuse(`the manifest of ${release} at s3://${bucket}/${manifestKey(release)}; it is missing`);
  const bodies = await readRelease(source.s3, { bucket, slot }, manifest).catch((err: Error) => {
    throw refuse(`${release}'s objects to match its manifest: ${err.message}`);
  });
  const bytes = [...bodies.values()].reduce((n, b) => n + b.length, 0);
  reporter.emit({ kind: "info", message: `${stack.name} serves ${release} on ${slot} to every viewer; read ${bodies.size} files (${bytes} bytes), each matching the manifest's SHA-256` });
  return { stack: stack.name, slot, release, manifest, bodies };
}

/** The target's approval gate, checked before anything changes; the approvers are recorded before the rollout. */
async function passGate(target: Target, config: StackConfig, served: ServedRelease, opts: PromoteOptions): Promise<{ promotedFrom: Record<string, string>; approvers?: Approver[] }> {
  const started = Date.now();
  const approvers = await requireApprovals({ stack: target.stack.name, gate: config.approvals, commandLine: opts.approve, env: opts.env });
  const promotedFrom = { stack: served.stack, slot: served.slot, release: served.release };
  if (approvers.length > 0) {
    await target.audit.append({
      action: "approval",
      actor: actor(),
      stack: target.stack.name,
      release: served.release,
      slots: config.slots,
      weights: config.weights,
      result: "approved",
      reasons: approvers.map((a) => `${a.login} approved as ${a.roles.join(", ")} (${a.source})`),
      timing: { startedAt: new Date(started).toISOString(), durationMs: Date.now() - started },
      details: { approvers, required: config.approvals.required, promotedFrom },
    });
  }
  return approvers.length > 0 ? { promotedFrom, approvers } : { promotedFrom };
}
