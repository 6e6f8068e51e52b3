// _qk_rows.wgsl: the q/k row helpers shared by qk_norm_rope.wgsl, qk_norm_rope_kv.wgsl and
// qk_norm_rope_backward.wgsl, appended to their source with _norm_rope.wgsl by the launchers
// (withNormRope in _shape.ts). Rows are numbered the QR query rows first, then the KR key rows.
// The kernel declares q_raw, k_raw, q_w, k_w and `p` with fields QR, KR, D, HQ, HKV.

fn raw(is_q: bool, idx: u32) -> f32 {
  if (is_q) { return q_raw[idx]; }
  return k_raw[idx];
}

fn weight(is_q: bool, i: u32) -> f32 {
  if (is_q) { return q_w[i]; }
  return k_w[i];
}

// Row r of the dispatch: whether it exists, whether a query row, its index in q or k, the heads
// per token of its tensor (token = row / heads) and its first element.
struct QkRow { valid: bool, is_q: bool, row: u32, heads: u32, base: u32 }

fn qk_row(r: u32) -> QkRow {
  let is_q = r < p.QR;
  let row = select(r - p.QR, r, is_q);
  return QkRow(r < p.QR + p.KR, is_q, row, select(p.HKV, p.HQ, is_q), row * p.D);
}

// This thread's share of the row's sum of squares (elements lane, lane + TPR, ...).
fn sum_squares(is_q: bool, base: u32, lane: u32) -> f32 {
  var s = 0.0;
  for (var i = lane; i < p.D; i += TPR) {
    let v = raw(is_q, base + i);
    s = fma(v, v, s);
  }
  return s;
}

// The forward of pair (i, i + half): RMSNorm (inv = 1 / rms) times the weight, then the rotation.
fn norm_rope(is_q: bool, base: u32, i: u32, half: u32, inv: f32, cs: vec2f) -> vec2f {
  let n1 = raw(is_q, base + i) * inv * weight(is_q, i);
  let n2 = raw(is_q, base + i + half) * inv * weight(is_q, i + half);
  return vec2f(n1 * cs.x - n2 * cs.y, n2 * cs.x + n1 * cs.y);
}
