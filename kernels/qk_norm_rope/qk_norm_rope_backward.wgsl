// qk_norm_rope_backward: backward of qk_norm_rope.wgsl (per-head RMSNorm then RoPE) for the
// queries and the keys in one dispatch, the gradient of each raw input written in place over the
// gradient of its output. For a row x of length D with r = 1 / sqrt(mean(x^2) + eps):
//   dn[i] = g[i] * c + g[i + D/2] * s,  dn[i + D/2] = g[i + D/2] * c - g[i] * s   (RoPE backward,
//           rotation by minus the angle; (c, s) = table[pos, i] as in the forward)
//   dx[i] = r * w[i] * dn[i] - x[i] * r^3 * (sum_j dn[j] * w[j] * x[j]) / D   (RMSNorm backward)
// dq [QR, D] holds g for the queries on entry and dx on exit; dk [KR, D] likewise for the keys.
// The weight gradients are not computed here (the launcher's callers use rope_backward.wgsl and
// rms_norm_backward.wgsl when the norm weights train).
// Workgroups of 64 threads, 16 threads per row and 4 rows a workgroup, rows numbered the QR query
// rows first, then the KR key rows (first row = (wg.x + wg.y * GRID_X) * 4), as the forward;
// each thread owns pairs (i, i + D/2) and rewrites only those.
// Reads q_raw, k_raw, q_w, k_w, positions, table; reads and writes dq, dk.
// Tolerance vs f64 reference: rel 1e-5 (f32 sums over a row; dx subtracts two similar terms).
struct Params { QR: u32, KR: u32, D: u32, HQ: u32, HKV: u32, max_pos: u32, eps: f32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read_write> dq: array<f32>;
@group(0) @binding(1) var<storage, read_write> dk: array<f32>;
@group(0) @binding(2) var<storage, read> q_raw: array<f32>;
@group(0) @binding(3) var<storage, read> k_raw: array<f32>;
@group(0) @binding(4) var<storage, read> q_w: array<f32>;
@group(0) @binding(5) var<storage, read> k_w: array<f32>;
@group(0) @binding(6) var<storage, read> positions: array<u32>;
@group(0) @binding(7) var<storage, read> table: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

var<workgroup> partial: array<vec2f, 64>;

fn grad(is_q: bool, idx: u32) -> f32 {
  if (is_q) { return dq[idx]; }
  return dk[idx];
}

fn set_grad(is_q: bool, idx: u32, v: f32) {
  if (is_q) { dq[idx] = v; } else { dk[idx] = v; }
}

// The norm output's gradient of the pair (i, i + half): the output gradient rotated back.
fn dnorm(is_q: bool, a: u32, cs: vec2f, half: u32) -> vec2f {
  return unrotate(vec2f(grad(is_q, a), grad(is_q, a + half)), cs);
}

// TPR, RPW, rope_cs, unrotate, reduce_rows: _norm_rope.wgsl; raw, weight, qk_row: _qk_rows.wgsl
// (appended by the launcher).

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let r0 = (wg.x + wg.y * GRID_X) * RPW;
  if (r0 >= p.QR + p.KR) { return; }
  let lane = t % TPR;
  let r = qk_row(r0 + t / TPR);
  let half = p.D / 2u;
  var pos = 0u;
  var s = vec2f(0.0);
  if (r.valid) {
    pos = min(positions[r.row / r.heads], p.max_pos - 1u);
    for (var i = lane; i < half; i += TPR) {
      let dn = dnorm(r.is_q, r.base + i, rope_cs(pos, half, i), half);
      let x1 = raw(r.is_q, r.base + i);
      let x2 = raw(r.is_q, r.base + i + half);
      s += vec2f(
        x1 * x1 + x2 * x2,
        dn.x * weight(r.is_q, i) * x1 + dn.y * weight(r.is_q, i + half) * x2,
      );
    }
  }
  partial[t] = s;
  reduce_rows(t, lane);
  if (!r.valid) { return; }
  let sums = partial[t - lane];
  let rs = inverseSqrt(sums.x / f32(p.D) + p.eps);
  let c = rs * rs * rs * sums.y / f32(p.D);
  for (var i = lane; i < half; i += TPR) {
    let dn = dnorm(r.is_q, r.base + i, rope_cs(pos, half, i), half);
    let x1 = raw(r.is_q, r.base + i);
    let x2 = raw(r.is_q, r.base + i + half);
    set_grad(r.is_q, r.base + i, rs * weight(r.is_q, i) * dn.x - x1 * c);
    set_grad(r.is_q, r.base + i + half, rs * weight(r.is_q, i + half) * dn.y - x2 * c);
  }
}
