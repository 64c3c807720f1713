// Where a person sees a stack: the viewer URL, and each slot's release-qualified URL. `/_r/<slot>/<release>/` reaches
// that slot's release whatever the weights (the router's skew protection, infra/router/viewer-request.js), so the idle
// slot is one click away and the URL carries no secret. The preview token is never needed for it, and never printed:
// a token in a URL would end up in shell history, CI logs, browser history and Referer headers.
import { spawn } from "node:child_process";
import { otherSlot, type Slot, type StackConfig } from "../infra/config";
import { OperatorNeededError, UsageError } from "./errors";
import type { Reporter } from "./output";
import type { EdgeTarget } from "./prober";
import { newestSucceeded, readHistory } from "./history";
import { parseConfigMap, readLiveConfig } from "./stackConfig";
import { edgeOf, openTarget, viewerUrl } from "./targets";

/** A slot's release-qualified URL: what its release serves, whatever the weights. */
export function slotUrl(edge: EdgeTarget, slot: Slot, release: string): string {
  return new URL(`_r/${slot}/${encodeURIComponent(release)}/`, viewerUrl(edge)).toString();
}

export interface Viewing {
  url: string;
  /** The slot with no viewers (after a rollout: the previous release, the instant rollback target). */
  idle: { slot: Slot; release: string | null; url: string | null; open: string };
}

/** What every report names: the viewer URL, and how to see the idle slot. */
export function viewing(stack: string, edge: EdgeTarget, config: Pick<StackConfig, "stable" | "slots">): Viewing {
  const slot = otherSlot(config.stable);
  const release = config.slots[slot].release ?? null;
  return { url: viewerUrl(edge), idle: { slot, release, url: release === null ? null : slotUrl(edge, slot, release), open: `bluegreen open --stack ${stack} --slot ${slot}` } };
}

/** The report's line: "viewers: URL; idle slot: ..." */
export function viewingLine(v: Viewing): string {
  const idle = v.idle.release === null ? `the idle slot ${v.idle.slot} holds no release` : `the idle slot ${v.idle.slot} (${v.idle.release}): ${v.idle.open}`;
  return `viewers: ${v.url}; ${idle}`;
}

/**
 * `bluegreen open --stack S --slot blue|green [--browser]`: prints the slot's URL (its release as deployed), or opens
 * it with $BROWSER, else the system's opener (xdg-open, open, start).
 */
export async function open(opts: { stack: string; slot?: Slot; browser: boolean; json: boolean }, reporter: Reporter): Promise<{ stack: string; slot: Slot; release: string; url: string }> {
  const target = await openTarget(opts.stack);
  try {
    const history = await readHistory(target.stack);
    const deployed = newestSucceeded(history);
    const { config } = deployed ? parseConfigMap(deployed.config, target.stack.name) : await readLiveConfig(target.stack);
    const outputs = await target.stack.outputs();
    const edge = edgeOf(target, outputs);
    const slot = opts.slot ?? config.stable;
    const release = config.slots[slot].release;
    if (release === undefined && opts.slot === undefined) throw new UsageError(`--stack = ${JSON.stringify(opts.stack)}: expected a stack that serves a release; nothing is deployed on it yet`);
    if (release === undefined) throw new UsageError(`--slot = ${JSON.stringify(slot)}: expected a slot that holds a release; ${target.stack.name}'s ${slot} holds none (${config.stable} is stable)`);
    const url = opts.slot === undefined ? viewerUrl(edge) : slotUrl(edge, slot, release);
    const report = { stack: target.stack.name, slot, release, url };
    // The URL is the command's output: on stdout, alone, so that `$(bluegreen open ...)` is the URL.
    if (!opts.json) process.stdout.write(`${url}\n`);
    if (opts.browser) await launch(url);
    reporter.finish(report, "", `${target.stack.name}'s ${slot} serves ${release}${opts.slot === undefined ? " to every viewer" : config.stable === slot ? " (stable)" : " (idle)"}${opts.browser ? "; opened in a browser" : ""}`);
    return report;
  } finally {
    await target.close();
  }
}

/** Opens a URL the way the desktop does; $BROWSER (a command) first, as many tools honour it. */
function launch(url: string): Promise<void> {
  const [command, args] = process.env.BROWSER
    ? [process.env.BROWSER, [url]]
    : process.platform === "darwin"
      ? ["open", [url]]
      : process.platform === "win32"
        ? ["cmd", ["/c", "start", "", url]]
        : ["xdg-open", [url]];
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "ignore", detached: true });
    child.once("error", (err) => reject(new OperatorNeededError(`--browser: cannot run ${command} (${err.message}); set BROWSER to your browser's command, or open the URL printed without --browser`)));
    child.once("spawn", () => {
      child.unref();
      resolve();
    });
  });
}
