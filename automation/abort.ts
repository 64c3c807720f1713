// `bluegreen abort --stack S`: from any machine, marks the stack's lease aborted (a conditional write). The running
// rollout's heartbeat reads the mark within one poll, reverts to the pre-rollout config and exits 1 naming who aborted.
// abort waits for it to let go of the lease and says how it ended: exit 0 once it reverted, 3 when it had already
// passed its last check (completed) or died (then `rollback` is what to run).
import { OperatorNeededError, UsageError } from "./errors";
import { awaitLetGo, currentHolder, describeHolder, describeJournal, leaseStoreOf, markAborted } from "./lease";
import type { Reporter } from "./output";
import { openTarget } from "./targets";

export interface AbortReport {
  result: "aborted";
  stack: string;
  holder: string;
  release: string | null;
  /** How the aborted command ended: rolled-back (reverted), failed (the revert did not complete: see its message), ... */
  outcome: string;
}

export async function abort(stackName: string, reporter: Reporter): Promise<AbortReport> {
  const target = await openTarget(stackName);
  try {
    const store = await leaseStoreOf(target);
    const marked = store ? await markAborted(store, currentHolder("abort")) : undefined;
    if (!marked?.ok) {
      const view = marked?.view;
      if (view?.state === "expired" && view.journal) {
        throw new OperatorNeededError(`stack ${stackName} has no rollout running to abort; the rollout of ${describeJournal(view.journal)} by ${describeHolder(view.holder)} was interrupted; run: bluegreen rollback --stack ${stackName}`);
      }
      throw new UsageError(`--stack = ${JSON.stringify(stackName)}: expected a stack with a rollout in progress; it has none (nothing was changed)`);
    }
    const holder = describeHolder(marked.holder);
    const what = marked.journal ? `the rollout of ${describeJournal(marked.journal)}` : "the rollout starting";
    reporter.emit({ kind: "info", message: `abort requested: ${what}, by ${holder}; waiting for it to revert (bluegreen status --stack ${stackName} --watch follows it)` });
    // The holder reads the mark within a heartbeat; what it did about it is what it writes when it lets go.
    const end = await awaitLetGo(store!, marked.holder);
    if (end.how === "expired") {
      throw new OperatorNeededError(`the rollout of stack ${stackName} by ${holder} stopped renewing its lease before it let go (its process died); run: bluegreen rollback --stack ${stackName}`);
    }
    if (end.how === "released" && end.outcome === "succeeded") {
      throw new OperatorNeededError(`the rollout by ${holder} had passed its last check when the abort reached it and completed; to undo it: bluegreen rollback --stack ${stackName}`);
    }
    const outcome = end.how === "released" ? (end.outcome ?? "released") : "taken over by another process";
    const report: AbortReport = { result: "aborted", stack: stackName, holder, release: marked.journal?.release ?? null, outcome };
    const line = `aborted: ${what} by ${holder} ended ${outcome}`;
    reporter.finish(report, line, line);
    return report;
  } finally {
    await target.close();
  }
}
