// Copyright 2025 the halo authors. MIT license.
// Internal: a cooperative work budget. Every loop and recursion of the verifier calls
// `tick()` (and the size-guarded LaTeX parser is charged by input length with `charge()`),
// which counts steps. Once the step budget is spent, or an optional wall-clock deadline
// has passed, it throws `BudgetExceeded`, which the public entry points catch and turn
// into reason "timeout".
//
// Determinism: the step count depends only on the inputs, so a budget without a deadline
// (the default in reward mode) gives the same decision on any machine under any load.
// A deadline (eval mode's default, or an explicit `budgetMs`) is a safety net whose
// outcome can depend on the machine. The clock is read through `now`, which tests replace
// to simulate a slow or loaded machine.

/** Thrown internally when the budget is spent; never escapes a public function. */
export class BudgetExceeded extends Error {
  constructor() {
    super("verification budget exceeded");
    this.name = "BudgetExceeded";
  }
}

/**
 * Default step budget of one verification. Measured: a MATH-500 or GSM8K gold against
 * itself uses at most a few thousand steps (see tests/verify_determinism_test.ts), so a
 * valid answer cannot hit this; adversarial inputs stop after about 20-100 ms of work.
 */
export const DEFAULT_BUDGET_STEPS = 200_000;

/** A per-call step budget plus an optional deadline. */
export class Budget {
  readonly deadline: number;
  readonly maxSteps: number;
  readonly #now: () => number;
  #steps = 0;

  constructor(
    budgetMs: number,
    start?: number,
    maxSteps: number = Infinity,
    now: () => number = () => performance.now(),
  ) {
    this.#now = now;
    this.maxSteps = maxSteps;
    this.deadline = Number.isFinite(budgetMs) ? (start ?? now()) + Math.max(0, budgetMs) : Infinity;
  }

  /** Steps counted so far. */
  get steps(): number {
    return this.#steps;
  }

  /** Counts one unit of work; checks the clock (when there is a deadline) every 64 units. */
  tick(): void {
    if (++this.#steps > this.maxSteps) throw new BudgetExceeded();
    if ((this.#steps & 63) === 0 && this.deadline !== Infinity) this.check();
  }

  /** Counts `n` units of work at once (e.g. one per character handed to the parser). */
  charge(n: number): void {
    this.#steps += Math.max(0, Math.ceil(n));
    if (this.#steps > this.maxSteps) throw new BudgetExceeded();
  }

  /** Checks the clock now (a no-op without a deadline). */
  check(): void {
    if (this.deadline !== Infinity && this.#now() > this.deadline) throw new BudgetExceeded();
  }

  /** Whether the deadline has passed (without throwing). */
  expired(): boolean {
    return this.deadline !== Infinity && this.#now() > this.deadline;
  }
}
