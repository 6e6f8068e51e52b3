// norm_rope_backward: backward of one tensor's per-head RMSNorm then RoPE (qk_norm_rope.wgsl's
// queries or keys) when the norm weight trains: qk_norm_rope_backward.wgsl's dx, and what the
// weight gradient passes of rms_norm_backward.wgsl need. For a row x of D with
// r = 1 / sqrt(mean(x^2) + eps) and (c, s) = table[pos, i] as in the forward:
//   dn[i] = g[i] * c + g[i + D/2] * s,  dn[i + D/2] = g[i + D/2] * c - g[i] * s   (RoPE backward)
//   dx[i] = r * w[i] * dn[i] - x[i] * r^3 * (sum_j dn[j] * w[j] * x[j]) / D   (RMSNorm backward)
// dy [R, D] holds g on entry and dn on exit; dx [R, D] receives dx; rstd [R] receives r.
// R = tokens * H rows, token = row / H, pos = min(positions[token], max_pos - 1).
// Workgroups of 64 threads, 16 threads per row and 4 rows a workgroup
// (first row = (wg.x + wg.y * GRID_X) * 4); each thread owns pairs (i, i + D/2).
// Reads x, w, positions, table; reads and writes dy; writes dx, rstd (dx must not alias dy or x).
// Tolerance vs f64 reference: rel 1e-5 (as qk_norm_rope_backward.wgsl); dn 1e-6 (one rotation).
struct Params { R: u32, D: u32, H: u32, max_pos: u32, eps: f32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read_write> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> positions: array<u32>;
@group(0) @binding(4) var<storage, read> table: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

var<workgroup> partial: array<vec2f, 64>;

// TPR, RPW, rope_cs, unrotate, reduce_rows: _norm_rope.wgsl (appended by the launcher).

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let r0 = (wg.x + wg.y * GRID_X) * RPW;
  if (r0 >= p.R) { return; }
  let lane = t % TPR;
  let row = r0 + t / TPR;
  let valid = row < p.R;
  let base = row * p.D;
  let half = p.D / 2u;
  var pos = 0u;
  var s = vec2f(0.0);
  if (valid) {
    pos = min(positions[row / p.H], p.max_pos - 1u);
    for (var i = lane; i < half; i += TPR) {
      let dn = unrotate(vec2f(dy[base + i], dy[base + i + half]), rope_cs(pos, half, i));
      let x1 = x[base + i];
      let x2 = x[base + i + half];
      s += vec2f(x1 * x1 + x2 * x2, dn.x * w[i] * x1 + dn.y * w[i + half] * x2);
    }
  }
  partial[t] = s;
  reduce_rows(t, lane);
  if (!valid) { return; }
  let sums = partial[t - lane];
  let rs = inverseSqrt(sums.x / f32(p.D) + p.eps);
  let cc = rs * rs * rs * sums.y / f32(p.D);
  for (var i = lane; i < half; i += TPR) {
    let dn = unrotate(vec2f(dy[base + i], dy[base + i + half]), rope_cs(pos, half, i));
    dy[base + i] = dn.x;
    dy[base + i + half] = dn.y;
    dx[base + i] = rs * w[i] * dn.x - x[base + i] * cc;
    dx[base + i + half] = rs * w[i + half] * dn.y - x[base + i + half] * cc;
  }
  if (lane == 0u) { rstd[row] = rs; }
}
