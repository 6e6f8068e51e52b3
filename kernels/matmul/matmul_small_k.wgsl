// matmul_small_k: the same product as matmul.wgsl, with the same bindings, Params and X_T / W_T
// variants (f16 w through kernels/_f16.ts), for a short inner dimension (K <= 32, the launcher
// checks) and few rows: the LoRA B projection of a decode step (x [m, r] · Bᵀ, r = 8 .. 32),
// where a 64x64 tile would compute mostly padding rows and spend a barrier on one K step.
//   y[m, y_col + n] = (accumulate ? y[m, y_col + n] : 0) + alpha * sum_k A[m, k] * B[n, k]
//   A[m, k] = x[m * ldx + x_col + k]   (X_T: x[k * ldx + x_col + m])
//   B[n, k] = w[n * ldw + w_col + k]   (W_T: w[k * ldw + w_col + n])
// One thread per output (grid [ceil(N / 64), M]); no shared memory, no barrier. The K loop is the
// only loop (K <= 32, far below Mesa's 65,535-iteration limit, see matmul.wgsl).
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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (n >= p.N || m >= p.M) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    var a: f32;
    if (X_T) { a = x[k * p.ldx + p.x_col + m]; } else { a = x[m * p.ldx + p.x_col + k]; }
    var b: f32;
    if (W_T) { b = w[k * p.ldw + p.w_col + n]; } else { b = w[n * p.ldw + p.w_col + k]; }
    acc = fma(a, b, acc);
  }
  let idx = m * p.ldy + p.y_col + n;
  var out = p.alpha * acc;
  if (p.accumulate != 0u) { out += y[idx]; }
  y[idx] = out;
}
