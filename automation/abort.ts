// `bluegreen abort --stack S`: from any machine, marks the stack's lease aborted (a conditional write). The running
// rollout's heartbeat reads the mark within one poll, reverts to the pre-rollout config and exits 1 naming who aborted.
import { OperatorNeededError, UsageError } from "./errors";
import { currentHolder, describeHolder, describeJournal, leaseStoreOf, markAborted } from "./lease";
import type { Reporter } from "./output";
import { openTarget } from "./targets";

export interface AbortReport {
  result: "abort-requested";
  stack: string;
  holder: string;
  release: string | null;
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
    const report: AbortReport = { result: "abort-requested", stack: stackName, holder: describeHolder(marked.holder), release: marked.journal?.release ?? null };
    const what = marked.journal ? `the rollout of ${describeJournal(marked.journal)}` : "the rollout starting";
    const line = `abort requested: ${what}, by ${report.holder}, reverts to the pre-rollout config; follow it with: bluegreen status --stack ${stackName} --watch`;
    reporter.finish(report, `### bluegreen abort ${stackName}\n\n${line}`, line);
    return report;
  } finally {
    await target.close();
  }
}
