// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { Budget, BudgetExceeded } from "./_budget.ts";

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
  const b = new Budget(100, 0, Infinity, () => t);
  b.check();
  t = 101;
  assert.equal(b.expired(), true);
  assert.throws(() => b.check(), BudgetExceeded);
});
