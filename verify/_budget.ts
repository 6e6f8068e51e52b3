// Copyright 2025 the halo authors. MIT license.
// Internal: a cooperative work budget. Every loop and recursion of the verifier calls
// `tick()` (and the size-guarded LaTeX parser is charged by input length with `charge()`),
// which counts steps. Once the step budget is spent, or an optional wall-clock deadline
// has passed, it throws `BudgetExceeded`, which the public entry points catch and turn
// into reason "timeout".
//
// Determinism: the step count depends only on the inputs, so a budget without a deadline
// (the default in reward mode) gives the same decision on any machine under any load.
// A deadline (eval mode's default 100 ms, or an explicit `budgetMs`) is a safety net
// against runaway work, not a latency limit: it is consulted only once a call has counted
// `CLOCK_AFTER_STEPS` steps, which valid answers never reach. Below that the clock is
// never read, so an ordinary answer gets the same decision under any load (a GC pause,
// a cold first parse, parallel test files on two cores cannot turn "12" into "timeout");
// past it, the outcome can depend on the machine. The clock is read through `now`, which
// tests replace to simulate a slow or loaded machine.

/** Thrown internally when the budget is spent; never escapes a public function. */
export class BudgetExceeded extends Error {
  constructor() {
    super("verification budget exceeded");
    this.name = "BudgetExceeded";
  }
}

/**
 * Default step budget of one verification. Measured: a MATH-500 or GSM8K gold against
 * itself uses at most a few hundred steps (see verify/verify_determinism_test.ts), so a
 * valid answer cannot hit this; adversarial inputs stop after about 20-100 ms of work.
 */
export const DEFAULT_BUDGET_STEPS = 200_000;

/**
 * Steps a call counts before its deadline (if any) is consulted. Measured with `verify`
 * in both modes on the MATH-500 and GSM8K test sets (tests/fixtures, shared/data) and the
 * labelled fixtures: a MATH-500 answer against itself, perturbed (`\dfrac`, `x =`) or
 * against four other problems' answers (the exact, numeric and random-point paths) at
 * most 242 steps, a MATH-500 solution or GSM8K worked answer against itself in eval mode
 * 57, GSM8K answers 8, verify_cases (both orders), verify_forms and the Hendrycks pairs
 * at most 1070 (`\frac{1}{1000!}` vs `\frac{1}{1001!}`), preparing any of these golds
 * at most 57. The threshold is 19x the largest measured count (80x the largest MATH-500
 * one). What does reach it are answers such as a set of 30-60 expressions in another
 * order (20,000-80,000 steps), where reaching it took 33-94 ms, parse included, on this
 * project's 2-core machine at load average 7: the deadline still bounds such work, that
 * much later. verify/verify_determinism_test.ts checks the fixture pairs stay below a
 * tenth of it.
 */
export const CLOCK_AFTER_STEPS = 20_000;

/** A per-call step budget plus an optional deadline. */
export class Budget {
  readonly deadline: number;
  readonly maxSteps: number;
  /** Steps counted before the deadline is consulted (see `CLOCK_AFTER_STEPS`). */
  readonly clockAfter: number;
  readonly #now: () => number;
  #steps = 0;
  #paused = 0;

  constructor(
    budgetMs: number,
    start?: number,
    maxSteps: number = Infinity,
    now: () => number = () => performance.now(),
    clockAfter: number = CLOCK_AFTER_STEPS,
  ) {
    this.#now = now;
    this.maxSteps = maxSteps;
    this.clockAfter = Math.max(0, clockAfter);
    this.deadline = Number.isFinite(budgetMs) ? (start ?? now()) + Math.max(0, budgetMs) : Infinity;
  }

  /** Steps counted so far. */
  get steps(): number {
    return this.#steps;
  }

  /**
   * Counts one unit of work; checks the clock (when there is a deadline and at least
   * `clockAfter` steps are counted) every 64 units.
   */
  tick(): void {
    if (++this.#steps > this.maxSteps) throw new BudgetExceeded();
    if ((this.#steps & 63) === 0 && this.deadline !== Infinity) this.check();
  }

  /** Counts `n` units of work at once (e.g. one per character handed to the parser). */
  charge(n: number): void {
    this.#steps += Math.max(0, Math.ceil(n));
    if (this.#steps > this.maxSteps) throw new BudgetExceeded();
  }

  /**
   * Checks the clock now; a no-op without a deadline, below `clockAfter` steps, and
   * inside `withoutDeadline`.
   */
  check(): void {
    if (this.expired()) throw new BudgetExceeded();
  }

  /** Whether `check()` would throw: the deadline applies (see `check`) and has passed. */
  expired(): boolean {
    return this.deadline !== Infinity && this.#paused === 0 &&
      this.#steps >= this.clockAfter && this.#now() > this.deadline;
  }

  /**
   * Runs `fn` with the deadline suspended: its steps are counted (and the step budget
   * applies) but the clock is not read. Used for a gold given as a string (trusted data).
   */
  withoutDeadline<T>(fn: () => T): T {
    this.#paused++;
    try {
      return fn();
    } finally {
      this.#paused--;
    }
  }
}
