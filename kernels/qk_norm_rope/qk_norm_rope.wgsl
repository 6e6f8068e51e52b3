// qk_norm_rope: Qwen3's per-head q/k RMSNorm followed by RoPE, for the queries and the keys in one
// dispatch (instead of rms_norm twice and rope twice). Rows are (token, head) pairs of length D:
//   q_raw, q [QR, D] with QR = tokens * HQ;   k_raw, k [KR, D] with KR = tokens * HKV
//   n[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]          (w = q_w or k_w [D]: rms_norm.wgsl)
//   y[i] = n[i] * c - n[i + D/2] * s,  y[i + D/2] = n[i + D/2] * c + n[i] * s,  i < D/2
//   (c, s) = table[pos, i] ([max_pos, D/2, 2]), pos = min(positions[row / heads], max_pos - 1)
//   (rope.wgsl's HF rotate-half convention, row / heads the token of the row).
// Workgroups of 64 threads, 16 threads per row and 4 rows a workgroup, rows numbered the QR query
// rows first, then the KR key rows (first row = (wg.x + wg.y * GRID_X) * 4). Each row's sum of
// squares is reduced in workgroup memory; then each thread owns pairs (i, i + D/2), so the
// rotation needs no exchange between threads. (One row per 64-thread workgroup, as rms_norm.wgsl,
// ran 1.5-2.5x slower on llvmpipe at 256 tokens: a workgroup and its barriers cost more there.)
// Reads q_raw, k_raw, q_w, k_w, positions, table; writes q, k (must not alias the raw inputs).
// Tolerance vs f64 reference: rel 1e-5 (the norm's f32 sum, then one rotation).
struct Params { QR: u32, KR: u32, D: u32, HQ: u32, HKV: u32, max_pos: u32, eps: f32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> q_raw: array<f32>;
@group(0) @binding(1) var<storage, read> k_raw: array<f32>;
@group(0) @binding(2) var<storage, read> q_w: array<f32>;
@group(0) @binding(3) var<storage, read> k_w: array<f32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;
@group(0) @binding(5) var<storage, read> table: array<f32>;
@group(0) @binding(6) var<storage, read_write> q: array<f32>;
@group(0) @binding(7) var<storage, read_write> k: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

fn store(is_q: bool, idx: u32, v: f32) {
  if (is_q) { q[idx] = v; } else { k[idx] = v; }
}

// TPR, RPW, rope_cs, reduce_rows: _norm_rope.wgsl; raw, weight, qk_row, sum_squares, norm_rope:
// _qk_rows.wgsl (appended by the launcher).

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let r0 = (wg.x + wg.y * GRID_X) * RPW;
  if (r0 >= p.QR + p.KR) { return; }
  let lane = t % TPR;
  let r = qk_row(r0 + t / TPR);
  var s = 0.0;
  if (r.valid) { s = sum_squares(r.is_q, r.base, lane); }
  partial[t] = s;
  reduce_rows(t, lane);
  if (!r.valid) { return; }
  let inv = inverseSqrt(partial[t - lane] / f32(p.D) + p.eps);
  let half = p.D / 2u;
  let pos = min(positions[r.row / r.heads], p.max_pos - 1u);
  for (var i = lane; i < half; i += TPR) {
    let y = norm_rope(r.is_q, r.base, i, half, inv, rope_cs(pos, half, i));
    store(r.is_q, r.base + i, y.x);
    store(r.is_q, r.base + i + half, y.y);
  }
}
