// matvec_vec4: y[m, y_col + n] = (accumulate ? y[m, y_col + n] : 0) + alpha * sum_k x[m, k] *
// w[n, k] for a few rows m (decode steps), when K is a multiple of 4: x [M, K] (row stride
// 4·ldx4, from column 4·x_col4) and w [N, K] (PyTorch's [out, in]) are read as vec4s along k
// (w as vec4<f16> for f16 weights, through kernels/_f16.ts). encodeMatvec uses it for decode
// projections, encodeMatmul's "auto" for products of <= 32 rows (LoRA B in decode). A thread owns
// 4 output columns and MB rows (override, 1..8): each
// step reads one vec4 of each of its 4 weight rows (16 weights) and one vec4 of each of its MB x
// rows, for 16·MB FMAs, all in registers (x rows and w columns past M / N read the last one, in
// bounds, and are not stored). TK consecutive threads (override, a power of two 1..64) split K
// between them, thread s taking k4 = s, s + TK, ... (consecutive threads read consecutive 16
// bytes), and sum their partials in shared memory (log2(TK) barriers); TK = 1 has no shared
// memory and no barrier. A workgroup of 64 threads covers 4·64/TK columns: grid
// [ceil(N / (256 / TK)) from n_block0 on (the launcher slices grids longer than the device's
// per-dimension limit), ceil(M / MB)].
// The only loops are the one over K (K / (4·TK) iterations, far below Mesa's 65,535-iteration
// limit, see kernels/matmul/matmul.wgsl) and the log2(TK)-step reduction; the per-row work is
// inlined calls.
// Input prologues: kernels/matvec/matvec_prologue.wgsl replaces the block marked "prologue" below
// (the K loop and the x load) and the uniform binding (eps and write_x are its parameters, unused
// here): x computed in the kernel from RMSNorm's raw rows or from SwiGLU's gate and up.
// Reads x, w (and y when accumulating); writes y. Tolerance vs f64 reference: rel 1e-5 (f32).
struct Params {
  M: u32, N: u32, K4: u32, ldx4: u32,
  x_col4: u32, ldy: u32, y_col: u32, accumulate: u32,
  alpha: f32, n_block0: u32, eps: f32, write_x: u32,
}
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> w: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override MB: u32 = 1u;
override TK: u32 = 1u;

var<private> acc: array<vec4f, 8>; // acc[i]: row m0 + i, the thread's 4 columns
var<workgroup> part: array<vec4f, 512>; // [MB][64] partials (TK > 1)

// prologue {
// The K loop of thread t (of column block `block`; uniform control flow): k4 = s, s + TK, ...
// with s = t % TK; r: offsets of its 4 weight rows.
fn k_loop(block: u32, t: u32, m0: u32, r: vec4u) {
  for (var k4 = t % TK; k4 < p.K4; k4 += TK) { k_step(m0, k4, r); }
}

// x[m0 + i, 4 k4 .. 4 k4 + 3] (rows past M read the last one).
fn load_x(i: u32, m0: u32, k4: u32) -> vec4f {
  return x[min(m0 + i, p.M - 1u) * p.ldx4 + p.x_col4 + k4];
}
// prologue }

// One vec4 step along k of the thread's rows: wt[j] holds weight k = 4 k4 + j of its 4 columns.
fn k_step(m0: u32, k4: u32, r: vec4u) {
  let wt = transpose(mat4x4f(w[r.x + k4], w[r.y + k4], w[r.z + k4], w[r.w + k4]));
  row_step(0u, m0, k4, wt);
  row_step(1u, m0, k4, wt);
  row_step(2u, m0, k4, wt);
  row_step(3u, m0, k4, wt);
  row_step(4u, m0, k4, wt);
  row_step(5u, m0, k4, wt);
  row_step(6u, m0, k4, wt);
  row_step(7u, m0, k4, wt);
}

// acc[i] += x[m0 + i, 4 k4 .. 4 k4 + 3] · the 4 weight vec4s: wt[j] holds weight k = 4 k4 + j
// of the 4 columns. One fma per k in k order, as the tile kernels: with TK = 1 the sums round
// exactly as theirs.
fn row_step(i: u32, m0: u32, k4: u32, wt: mat4x4f) {
  if (i >= MB) { return; }
  let xv = load_x(i, m0, k4);
  var a = fma(vec4f(xv.x), wt[0], acc[i]);
  a = fma(vec4f(xv.y), wt[1], a);
  a = fma(vec4f(xv.z), wt[2], a);
  acc[i] = fma(vec4f(xv.w), wt[3], a);
}

fn reduce_row(i: u32, t: u32, s: u32) {
  if (i >= MB) { return; }
  part[i * 64u + t] += part[i * 64u + t + s];
}

fn store_row(i: u32, m0: u32, n0: u32, v: vec4f) {
  let m = m0 + i;
  if (i >= MB || m >= p.M) { return; }
  let base = m * p.ldy + p.y_col + n0;
  store1(base, n0 < p.N, v.x);
  store1(base + 1u, n0 + 1u < p.N, v.y);
  store1(base + 2u, n0 + 2u < p.N, v.z);
  store1(base + 3u, n0 + 3u < p.N, v.w);
}

fn store1(idx: u32, ok: bool, v: f32) {
  if (!ok) { return; }
  var out = p.alpha * v;
  if (p.accumulate != 0u) { out += y[idx]; }
  y[idx] = out;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let s = t % TK;
  let n0 = ((p.n_block0 + wg.x) * (64u / TK) + t / TK) * 4u;
  let m0 = wg.y * MB;
  let last = p.N - 1u;
  k_loop(p.n_block0 + wg.x, t, m0, min(vec4u(n0) + vec4u(0u, 1u, 2u, 3u), vec4u(last)) * p.K4);
  if (TK > 1u) {
    for (var i = 0u; i < MB; i++) { part[i * 64u + t] = acc[i]; }
    workgroupBarrier();
    for (var h = TK / 2u; h > 0u; h >>= 1u) {
      if (s < h) {
        reduce_row(0u, t, h);
        reduce_row(1u, t, h);
        reduce_row(2u, t, h);
        reduce_row(3u, t, h);
        reduce_row(4u, t, h);
        reduce_row(5u, t, h);
        reduce_row(6u, t, h);
        reduce_row(7u, t, h);
      }
      workgroupBarrier();
    }
    if (s != 0u) { return; }
    for (var i = 0u; i < MB; i++) { acc[i] = part[i * 64u + t]; }
  }
  store_row(0u, m0, n0, acc[0]);
  store_row(1u, m0, n0, acc[1]);
  store_row(2u, m0, n0, acc[2]);
  store_row(3u, m0, n0, acc[3]);
  store_row(4u, m0, n0, acc[4]);
  store_row(5u, m0, n0, acc[5]);
  store_row(6u, m0, n0, acc[6]);
  store_row(7u, m0, n0, acc[7]);
}
