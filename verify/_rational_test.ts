// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { intRoot, parseDecimal, powInt, rat, ratRoot, toNumber } from "./_rational.ts";

Deno.test("parseDecimal() reads plain, exponent and repeating decimals exactly", () => {
  assert.deepEqual(parseDecimal("0.5"), { n: 1n, d: 2n });
  assert.deepEqual(parseDecimal("-1.5e3"), { n: -1500n, d: 1n });
  assert.deepEqual(parseDecimal("10e-2"), { n: 1n, d: 10n });
  assert.deepEqual(parseDecimal("0.(3)"), { n: 1n, d: 3n });
  assert.deepEqual(parseDecimal("1.2(34)"), { n: 611n, d: 495n });
  assert.equal(parseDecimal("1e99999"), null);
  assert.equal(parseDecimal("abc"), null);
});

Deno.test("powInt() and ratRoot() stay exact and refuse huge results", () => {
  assert.deepEqual(powInt(rat(2n)!, 10n), { n: 1024n, d: 1n });
  assert.deepEqual(powInt(rat(2n, 3n)!, -2n), { n: 9n, d: 4n });
  assert.equal(powInt(rat(10n)!, 100000n), null);
  assert.deepEqual(powInt(rat(-1n)!, 10n ** 9n % 100000n + 1n), { n: -1n, d: 1n });
  assert.deepEqual(ratRoot(rat(-27n, 8n)!, 3), { n: -3n, d: 2n });
  // An even root of a negative number is not a rational (√−4 = 2i, not −2).
  assert.equal(ratRoot(rat(-4n)!, 2), null);
  // Past the size guard, powers of −1 keep their sign by the parity of the exponent.
  assert.deepEqual(powInt(rat(-1n)!, 99999n), { n: -1n, d: 1n });
  assert.deepEqual(powInt(rat(-1n)!, 99998n), { n: 1n, d: 1n });
  assert.equal(ratRoot(rat(2n)!, 2), null);
  assert.equal(intRoot(10n ** 40n, 2), 10n ** 20n);
});

Deno.test("rat() keeps the sign in the numerator and reduces", () => {
  assert.deepEqual(rat(3n, -6n), { n: -1n, d: 2n });
  assert.deepEqual(rat(-3n, -6n), { n: 1n, d: 2n });
  assert.equal(rat(1n, 0n), null);
});

Deno.test("toNumber() converts huge rationals accurately", () => {
  assert.equal(toNumber(rat(1n, 3n)!), 1 / 3);
  assert.equal(toNumber(rat(10n ** 400n, 10n ** 399n)!), 10);
  assert.equal(toNumber(rat(2n ** 1100n)!), Infinity);
  // Past 2^53 (no common factor to reduce): the sign survives the scaled division.
  assert.equal(toNumber(rat(-(10n ** 400n + 1n), 10n ** 399n)!), -10);
});
