// The stack's update history, read whole and judged the way the CLI reports it. `pulumi stack history` pages 10
// updates by default (`--page-size` 10, pkg/cmd/pulumi/stack/stack_history.go), and one default rollout is 6 updates,
// so every reader here pages until a short page. An update in progress has result "in-progress" and no endTime.
import { CONFIG_NAMESPACE } from "../infra/config";
import { OperatorNeededError } from "./errors";
import type { DeploymentStack, UpdateSummary } from "./port";

const PAGE_SIZE = 100;

/** Every update, newest first (secrets shown: they are needed to parse a config, and never printed). */
export async function readHistory(stack: DeploymentStack): Promise<UpdateSummary[]> {
  const all: UpdateSummary[] = [];
  for (let page = 1; ; page++) {
    const batch = await stack.history(PAGE_SIZE, page, true);
    all.push(...batch);
    if (batch.length < PAGE_SIZE) return all;
  }
}

/** The newest successful update: what the stack serves. A failed update records the config it only attempted. */
export function newestSucceeded(history: readonly UpdateSummary[]): UpdateSummary | undefined {
  return history.find((u) => u.kind === "update" && u.result === "succeeded");
}

/** The update in progress, if any: it has no end time yet. */
export function updateInProgress(history: readonly UpdateSummary[]): UpdateSummary | undefined {
  return history.find((u) => u.result === "in-progress");
}

/** "update 12 in progress since 2026-12-01T10:00:00.000Z (message)". */
export function describeInProgress(u: UpdateSummary): string {
  return `update ${u.version} in progress since ${new Date(u.startTime).toISOString()}${u.message ? ` (${u.message})` : ""}`;
}

/**
 * Refuses to change a stack while an update runs on it. `holder` names a live bluegreen run when there is one; without
 * one, the update's own process may be gone (a killed `pulumi up` leaves it open), which only `pulumi cancel` ends.
 */
export function refuseInProgress(stack: string, history: readonly UpdateSummary[], holder?: string): void {
  const open = updateInProgress(history);
  if (open === undefined) return;
  const what = `stack ${stack} has ${describeInProgress(open)}`;
  if (holder !== undefined) throw new OperatorNeededError(`${what}, run by ${holder}; wait for it to finish`);
  throw new OperatorNeededError(
    `${what}; if no \`pulumi up\` or bluegreen is running for it any more, end it with: pulumi cancel --yes --stack ${stack} (in GitHub Actions: run the rollback workflow with cancel-stuck-update), then run this again`,
  );
}

/** The highest routing revision any update ever carried, failed and in-progress ones included. */
export function highestRevision(history: readonly UpdateSummary[], current = 0): number {
  return Math.max(current, ...history.map((u) => Number(u.config[`${CONFIG_NAMESPACE}:revision`]?.value ?? 0)).filter(Number.isFinite));
}
