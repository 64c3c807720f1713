// SIGINT and SIGTERM while the driver changes a stack. A terminal's Ctrl-C reaches the driver alone (the CLI and the
// program runner have process groups of their own: processGroup.ts, local/program.ts), and CI cancels a job with
// SIGINT, then SIGTERM 7.5 s later (https://docs.github.com/en/actions/reference/workflow-cancellation-reference).
// Neither kills the driver while it holds them: the first one asks the work to stop (a rollout then reverts), every
// further one is only answered with where the work is. SIGKILL cannot be held; it leaves the journal for `rollback`.

/** What a held signal is told: which one, and how many (this one included) arrived since the hold began. */
export type SignalAnswer = (signal: NodeJS.Signals, count: number, sinceFirstMs: number) => void;

/** Holds SIGINT and SIGTERM until the returned function is called; each one is passed to `answer` instead. */
export function holdSignals(answer: SignalAnswer): () => void {
  let count = 0;
  let first = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (count++ === 0) first = Date.now();
    answer(signal, count, Date.now() - first);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
}
