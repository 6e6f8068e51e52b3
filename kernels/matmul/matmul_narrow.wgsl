// matmul_narrow: the same product as matmul.wgsl, with the same bindings, Params and X_T / W_T
// variants (f16 w through kernels/_f16.ts), for a narrow output (N <= 8, the launcher checks) and
// a long inner dimension: the LM head's d x = d logits · W ([tokens, hidden] over the
// vocabulary) at a tiny hidden size, where a 64x64 tile computes 7/8 padding columns.
//   y[m, y_col + n] = (accumulate ? y[m, y_col + n] : 0) + alpha * sum_k A[m, k] * B[n, k]
//   A[m, k] = x[m * ldx + x_col + k]   (X_T: x[k * ldx + x_col + m])
//   B[n, k] = w[n * ldw + w_col + k]   (W_T: w[k * ldw + w_col + n])
// One thread per two output rows (grid [ceil(M / 64)], 32 threads each) holding their N outputs
// in four vec4s: per k two reads of A (the second row clamped to M - 1) and 8 of B (column
// min(n, N - 1)), so always in bounds for M, N >= 1 (the launcher records no dispatch for an empty
// output; the kernel returns at once for N = 0 too); the extra rows and columns are never stored.
// (Two rows per thread ran 1.8× one row on llvmpipe: B's reads are shared.) No shared memory, no
// barrier. Each output is summed in k order with one fma per k from 0, then scaled by alpha (and
// added to y), as the tile kernels do: the same rounding, bit for bit.
// The K loop steps 16 k with its body written as calls (inlined: no inner loop), so that Mesa's
// 65,535-iteration loop limit (see matmul.wgsl) allows K up to ~1,048,000; a tail loop of < 16.
// Reads x, w (and y when accumulating); writes y. Tolerance vs f64 reference: rel 1e-5 (f32).
struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, y_col: u32, accumulate: u32, alpha: f32,
  ldw: u32, x_col: u32, w_col: u32,
  k_chunk: u32, // matmul.wgsl's split-K chunk: always 0 (the whole of K) for this kernel
}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override X_T: bool = false;
override W_T: bool = false;

var<private> acc0: vec4f;
var<private> acc1: vec4f;
var<private> acc2: vec4f;
var<private> acc3: vec4f;

fn a_at(m: u32, k: u32) -> f32 {
  if (X_T) { return x[k * p.ldx + p.x_col + m]; }
  return x[m * p.ldx + p.x_col + k];
}

fn b_at(n: u32, k: u32) -> f32 {
  let c = min(n, p.N - 1u);
  if (W_T) { return w[k * p.ldw + p.w_col + c]; }
  return w[c * p.ldw + p.w_col + k];
}

fn step(m: u32, k: u32) {
  let a = vec4f(a_at(m, k));
  let a2 = vec4f(a_at(min(m + 1u, p.M - 1u), k));
  let b0 = vec4f(b_at(0u, k), b_at(1u, k), b_at(2u, k), b_at(3u, k));
  let b1 = vec4f(b_at(4u, k), b_at(5u, k), b_at(6u, k), b_at(7u, k));
  acc0 = fma(a, b0, acc0);
  acc1 = fma(a, b1, acc1);
  acc2 = fma(a2, b0, acc2);
  acc3 = fma(a2, b1, acc3);
}

fn step4(m: u32, k: u32) {
  step(m, k);
  step(m, k + 1u);
  step(m, k + 2u);
  step(m, k + 3u);
}

fn store(m: u32, n: u32, v: f32) {
  if (n >= p.N) { return; }
  let idx = m * p.ldy + p.y_col + n;
  var out = p.alpha * v;
  if (p.accumulate != 0u) { out += y[idx]; }
  y[idx] = out;
}

@compute @workgroup_size(32)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let m = 2u * gid.x;
  if (m >= p.M || p.N == 0u) { return; }
  acc0 = vec4f();
  acc1 = vec4f();
  acc2 = vec4f();
  acc3 = vec4f();
  let k16 = p.K - p.K % 16u;
  for (var k = 0u; k < k16; k += 16u) {
    step4(m, k);
    step4(m, k + 4u);
    step4(m, k + 8u);
    step4(m, k + 12u);
  }
  for (var k = k16; k < p.K; k++) {
    step(m, k);
  }
  store_row(m, acc0, acc1);
  if (m + 1u < p.M) { store_row(m + 1u, acc2, acc3); }
}

fn store_row(m: u32, v0: vec4f, v1: vec4f) {
  store(m, 0u, v0.x);
  store(m, 1u, v0.y);
  store(m, 2u, v0.z);
  store(m, 3u, v0.w);
  store(m, 4u, v1.x);
  store(m, 5u, v1.y);
  store(m, 6u, v1.z);
  store(m, 7u, v1.w);
}
