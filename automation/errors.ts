// Typed failures; the CLI's single top-level handler maps each to its exit code.
// 0 done; 1 rolled back (traffic back on the stable slot); 2 bad input, nothing changed; 3 operator needed.

export const EXIT = { ok: 0, rolledBack: 1, badInput: 2, operatorNeeded: 3 } as const;

/** The rollout failed and traffic is back on the stable slot (the report says why). */
export class RolledBackError extends Error {
  readonly exitCode = EXIT.rolledBack;
  constructor(message: string) {
    super(message);
    this.name = "RolledBackError";
  }
}

/** Bad input: nothing was changed. One line naming the field, the value and what is allowed. */
export class UsageError extends Error {
  readonly exitCode = EXIT.badInput;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The system is in a state a human must resolve; the message says exactly what to run. */
export class OperatorNeededError extends Error {
  readonly exitCode = EXIT.operatorNeeded;
  constructor(message: string) {
    super(message);
    this.name = "OperatorNeededError";
  }
}

/** Another rollout holds the stack's lock. Bad input from the caller's point of view: nothing changed. */
export class StackLockedError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = "StackLockedError";
  }
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError || err instanceof OperatorNeededError || err instanceof RolledBackError) return err.exitCode;
  return EXIT.operatorNeeded;
}
