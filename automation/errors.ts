// Typed failures; the CLI's single top-level handler maps each to its exit code.
// 0 done; 1 rolled back (traffic back on the stable slot); 2 bad input, nothing changed; 3 operator needed.
import { ConfigError } from "../infra/config";

export const EXIT = { ok: 0, rolledBack: 1, badInput: 2, operatorNeeded: 3 } as const;

/** A failure that carries the exit code it means. */
abstract class ExitError extends Error {
  abstract readonly exitCode: number;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The rollout failed and traffic is back on the stable slot (the report says why). */
export class RolledBackError extends ExitError {
  readonly exitCode = EXIT.rolledBack;
}

/** Bad input: nothing was changed. One line naming the field, the value and what is allowed. */
export class UsageError extends ExitError {
  readonly exitCode = EXIT.badInput;
}

/** The system is in a state a human must resolve; the message says exactly what to run. */
export class OperatorNeededError extends ExitError {
  readonly exitCode = EXIT.operatorNeeded;
}

/** Another rollout holds the stack's lock. Bad input from the caller's point of view: nothing changed. */
export class StackLockedError extends UsageError {}

/** The exit code a failure means: its own, bad input for a stack config value the schema rejects, else operator needed. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof ConfigError) return EXIT.badInput;
  return err instanceof ExitError ? err.exitCode : EXIT.operatorNeeded;
}
