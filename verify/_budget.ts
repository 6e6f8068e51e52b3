// Copyright 2025 the halo authors. MIT license.
// Internal: a cooperative time budget. Every loop and recursion of the verifier calls
// `tick()`; once the deadline passes it throws `BudgetExceeded`, which the public entry
// points catch and turn into reason "timeout". JavaScript cannot pre-empt a running call,
// so the one non-cooperative step (the LaTeX parser) is bounded by input-size guards.

/** Thrown internally when the budget is spent; never escapes a public function. */
export class BudgetExceeded extends Error {
  constructor() {
    super("verification budget exceeded");
    this.name = "BudgetExceeded";
  }
}

/** A per-call deadline plus a step counter. */
export class Budget {
  readonly deadline: number;
  #steps = 0;

  constructor(budgetMs: number, start: number = performance.now()) {
    this.deadline = Number.isFinite(budgetMs) ? start + Math.max(0, budgetMs) : Infinity;
  }

  /** Counts one unit of work; checks the clock every 64 units. */
  tick(): void {
    if ((++this.#steps & 63) === 0) this.check();
  }

  /** Checks the clock now. */
  check(): void {
    if (performance.now() > this.deadline) throw new BudgetExceeded();
  }

  /** Whether the deadline has passed (without throwing). */
  expired(): boolean {
    return performance.now() > this.deadline;
  }
}
