// matvec: y[m, y_col + n] = (accumulate ? y[m, y_col + n] : 0) + sum_k x[m, k] * w[n, k] for a
// few rows m (decode steps): the skinny case of matmul.wgsl, whose 64x64 tiles would compute
// mostly padding and give too few workgroups. x is [M, K], w is [N, K] (PyTorch's [out, in]), y
// has row stride ldy. A workgroup of 64 threads owns 4 output columns and MB rows (override, a
// power of two 1..8): thread t sums k = t, t + 64, ... (consecutive threads read consecutive
// weights), then one shared-memory tree reduces the 4 x MB partial sums. Grid
// [column blocks, ceil(M / MB)], the column blocks from n_block0 on (the launcher slices grids
// longer than the device's per-dimension limit).
// Reads x, w (and y when accumulating); writes y. Tolerance vs f64 reference: rel 1e-5 (f32).
struct Params { M: u32, N: u32, K: u32, ldy: u32, y_col: u32, accumulate: u32, n_block0: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override MB: u32 = 4u;
const NB = 4u;

var<workgroup> part: array<f32, 2048>; // [MB * NB][64]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let n0 = (p.n_block0 + wg.x) * NB;
  let m0 = wg.y * MB;
  var acc: array<f32, 32>;
  for (var i = 0u; i < MB * NB; i++) { acc[i] = 0.0; }
  // Columns past N and rows past M read the last one (in bounds) and are not stored.
  for (var k = t; k < p.K; k += 64u) {
    var wv: array<f32, 4>;
    for (var c = 0u; c < NB; c++) { wv[c] = w[min(n0 + c, p.N - 1u) * p.K + k]; }
    for (var i = 0u; i < MB; i++) {
      let xv = x[min(m0 + i, p.M - 1u) * p.K + k];
      for (var c = 0u; c < NB; c++) { acc[i * NB + c] = fma(xv, wv[c], acc[i * NB + c]); }
    }
  }
  for (var i = 0u; i < MB * NB; i++) { part[i * 64u + t] = acc[i]; }
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (t < s) {
      for (var i = 0u; i < MB * NB; i++) { part[i * 64u + t] += part[i * 64u + t + s]; }
    }
    workgroupBarrier();
  }
  if (t < MB * NB) {
    let m = m0 + t / NB;
    let n = n0 + t % NB;
    if (m < p.M && n < p.N) {
      let idx = m * p.ldy + p.y_col + n;
      var out = part[t * 64u];
      if (p.accumulate != 0u) { out += y[idx]; }
      y[idx] = out;
    }
  }
}
