// Private to cli/: which errors a command reports as bad input (its message, exit code 2, no
// stack) rather than as a bug.

/**
 * Whether `error` is bad input to a command: a missing file, invalid JSON, a wrong type or value,
 * or an error whose message starts with "Cannot" (the project's errors that name what was
 * expected and what came).
 *
 * @param error What the command threw.
 * @returns True for bad input.
 *
 * @example Bad input, and a bug
 * ```ts
 * import { isInputError } from "./_input_error.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(isInputError(new RangeError("lr must be > 0")), true);
 * strictEqual(isInputError(new Error('Cannot evaluate: --model "m" not found')), true);
 * strictEqual(isInputError(new Error("index out of bounds")), false);
 * ```
 */
export function isInputError(error: unknown): error is Error {
  return error instanceof Deno.errors.NotFound || error instanceof SyntaxError ||
    error instanceof TypeError || error instanceof RangeError ||
    (error instanceof Error && error.message.startsWith("Cannot"));
}
