import { assertClose, randomArray } from "../_test_utils.ts";
import { embeddingBackwardRef } from "./embedding_backward_ref.ts";
import { embeddingRef } from "./embedding_ref.ts";

// Central differences in float64: truncation ~h² and rounding ~1e-16/h, both far below TOL.
const H = 1e-5;
// Analytic vs numeric gradient in float64: agreement is ~1e-9; 1e-6 leaves room for curvature.
const TOL = 1e-6;

/** d loss / d x by central differences, perturbing `x` in place (restored afterwards). */
function centralDiff(x: Float64Array, loss: () => number): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + H;
    const up = loss();
    x[i] = x0 - H;
    const down = loss();
    x[i] = x0;
    g[i] = (up - down) / (2 * H);
  }
  return g;
}

/** Σ a ⊙ b. */
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Seeded uniform float64 values in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  return Float64Array.from(randomArray(n, seed, lo, hi));
}

Deno.test("embeddingBackwardRef() matches central differences of embeddingRef", () => {
  const [vocab, h] = [7, 3];
  const ids = [2, 5, 2, 0, 2, 5]; // repeated ids, and rows 1, 3, 4, 6 unused
  const table = rand(vocab * h, 1);
  const ct = rand(ids.length * h, 2);
  const loss = () => dot(ct, embeddingRef(ids, table, h));
  assertClose(
    embeddingBackwardRef(ct, ids, { vocab, h }),
    centralDiff(table, loss),
    TOL,
    "embedding",
  );
});

Deno.test("embeddingBackwardRef() rejects ids outside the vocabulary", () => {
  let message = "";
  try {
    embeddingBackwardRef([1], [4], { vocab: 4, h: 1 });
  } catch (e) {
    if (e instanceof RangeError) message = e.message;
  }
  if (!message.includes("[0, 4)")) throw new Error(`expected a RangeError, got "${message}"`);
});
