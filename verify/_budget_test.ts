// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { Budget, BudgetExceeded, CLOCK_AFTER_STEPS } from "./_budget.ts";

Deno.test("Budget counts steps and throws once they are spent", () => {
  const b = new Budget(Infinity, undefined, 10);
  for (let i = 0; i < 10; i++) b.tick();
  assert.equal(b.steps, 10);
  assert.throws(() => b.tick(), BudgetExceeded);
  const c = new Budget(Infinity, undefined, 100);
  c.charge(60);
  assert.throws(() => c.charge(60), BudgetExceeded);
});

Deno.test("Budget without a deadline never reads the clock", () => {
  let reads = 0;
  const b = new Budget(Infinity, undefined, 1000, () => ++reads * 1e9);
  for (let i = 0; i < 500; i++) b.tick();
  b.check();
  assert.equal(b.expired(), false);
  assert.equal(reads, 0);
});

Deno.test("Budget with a deadline throws when the clock passes it", () => {
  let t = 0;
  // clockAfter 0: the clock applies from the first step.
  const b = new Budget(100, 0, Infinity, () => t, 0);
  b.check();
  t = 101;
  assert.equal(b.expired(), true);
  assert.throws(() => b.check(), BudgetExceeded);
});

Deno.test("Budget reads its clock only past CLOCK_AFTER_STEPS counted steps", () => {
  // A clock one second later at every read: a deadline of 100 ms is always past.
  let reads = 0;
  const now = () => ++reads * 1000;
  const b = new Budget(100, 0, Infinity, now);
  assert.equal(b.clockAfter, CLOCK_AFTER_STEPS);
  for (let i = 0; i < CLOCK_AFTER_STEPS - 1; i++) b.tick();
  b.check();
  assert.equal(b.expired(), false);
  assert.equal(reads, 0);
  b.charge(1); // CLOCK_AFTER_STEPS steps: the deadline applies now
  assert.equal(b.expired(), true);
  assert.throws(() => b.check(), BudgetExceeded);
  // tick() reads the clock at the next multiple of 64 steps and throws.
  const c = new Budget(100, 0, Infinity, now);
  c.charge(CLOCK_AFTER_STEPS);
  let ticks = 0;
  assert.throws(() => {
    for (; ticks < 1000; ticks++) c.tick();
  }, BudgetExceeded);
  assert.ok(ticks < 64, `${ticks} ticks past the threshold before the deadline fired`);
});

Deno.test("Budget.withoutDeadline counts steps but does not read the clock", () => {
  let reads = 0;
  const b = new Budget(100, 0, 1000, () => ++reads * 1000, 0);
  const r = b.withoutDeadline(() => {
    for (let i = 0; i < 640; i++) b.tick();
    b.check();
    return b.expired();
  });
  assert.equal(r, false);
  assert.equal(reads, 0);
  assert.equal(b.steps, 640);
  assert.throws(() => b.check(), BudgetExceeded); // restored afterwards
  assert.throws(() => b.withoutDeadline(() => b.charge(1000)), BudgetExceeded);
  assert.throws(() => b.check(), BudgetExceeded); // also after a throw
});
