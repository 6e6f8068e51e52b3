// qk_norm_rope_kv: qk_norm_rope.wgsl for decoding, with the KV cache append (kv_write.wgsl's
// DECODE variant) folded in: the keys go straight into their cache slot, the values are copied
// into theirs, and the slot is marked in the mask. One dispatch instead of two.
//   q_raw, q [QR, D] with QR = tokens * HQ;   k_raw, v [KR, D] with KR = tokens * HKV
//   q = rope(rms_norm(q_raw) * q_w) (as qk_norm_rope.wgsl); for key row kr of token
//   tok = kr / HKV, head h = kr % HKV, sequence r = tok / T, t = tok % T, slot = ctrl[0] + t:
//   k_cache[row0 + r, slot, h * D + i] = rope(rms_norm(k_raw[kr]) * k_w)[i],
//   v_cache[row0 + r, slot, h * D + i] = v[kr, i],  mask[row0 + r, slot] = 1;
//   caches [Rc, S, HKV * D], mask [Rc, S]; slots >= S are dropped (the queries are still written).
// Workgroups of 64 threads, 16 threads per row and 4 rows a workgroup, the QR query rows first,
// then the KR key rows (first row = (wg.x + wg.y * GRID_X) * 4), as qk_norm_rope.wgsl.
// Reads q_raw, k_raw, q_w, k_w, positions, table, v, ctrl; writes q, k_cache, v_cache, mask.
// 12 storage buffers: launched only where the device allows that many (the launcher checks).
// Input layout: head h of token tok is read from q_raw at tok * q_ld + q_off + h * D (k_raw, v
// likewise with k_ld, k_off and v_ld, v_off): the launcher's defaults (ld = heads * D, off = 0)
// give row * D, the contiguous [QR, D] / [KR, D] rows above; a fused q|k|v projection's output
// [tokens, (HQ + 2 HKV) D] binds all three with ld = (HQ + 2 HKV) D and offsets 0, HQ D,
// (HQ + HKV) D. q, the caches and the mask are written as above whatever the input layout.
// Cache storage (kernels/_kv_f16.ts): f32 (KvWord = f32), or packed f16 (KvWord = u32, KV_F16 =
// true): each thread stores pairs of adjacent values (i, i + 1) of its key and value rows as one
// word (pack2x16float, saturated to +-65504), computing key element i from its rotation pair
// (i mod D/2).
// Tolerance vs f64 reference: rel 1e-5 for q and the keys (as qk_norm_rope.wgsl); values and mask
// exact (copies). f16 cache: keys and values one of the two f16 neighbours of those.
struct Params {
  QR: u32, KR: u32, D: u32, HQ: u32, HKV: u32, max_pos: u32, eps: f32, T: u32, S: u32, row0: u32,
  q_ld: u32, q_off: u32, k_ld: u32, k_off: u32, v_ld: u32, v_off: u32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
// The caches' word type: u32 in the packed-f16 variant (the one substitution the launcher makes).
alias KvWord = f32;
override KV_F16: bool = false;
@group(0) @binding(0) var<storage, read> q_raw: array<f32>;
@group(0) @binding(1) var<storage, read> k_raw: array<f32>;
@group(0) @binding(2) var<storage, read> q_w: array<f32>;
@group(0) @binding(3) var<storage, read> k_w: array<f32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;
@group(0) @binding(5) var<storage, read> table: array<f32>;
@group(0) @binding(6) var<storage, read_write> q: array<f32>;
@group(0) @binding(7) var<storage, read_write> k_cache: array<KvWord>;
@group(0) @binding(8) var<storage, read> v: array<f32>;
@group(0) @binding(9) var<storage, read_write> v_cache: array<KvWord>;
@group(0) @binding(10) var<storage, read_write> mask: array<u32>;
@group(0) @binding(11) var<storage, read> ctrl: array<u32>;
@group(0) @binding(12) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

// Two values as one packed-f16 word, saturated to the finite f16 range.
fn pack_kv(x: vec2f) -> u32 {
  return pack2x16float(clamp(x, vec2f(-65504.0), vec2f(65504.0)));
}

// Element e of the normalised, rotated key row at src: half of rotation pair e mod D/2.
fn key_at(src: u32, e: u32, half: u32, inv: f32, pos: u32) -> f32 {
  let hi = e >= half;
  let i = select(e, e - half, hi);
  let y = norm_rope(false, src, i, half, inv, rope_cs(pos, half, i));
  return select(y.x, y.y, hi);
}

// TPR, RPW, rope_cs, reduce_rows: _norm_rope.wgsl; raw, weight, qk_row, sum_squares, norm_rope:
// _qk_rows.wgsl (appended by the launcher).

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let r0 = (wg.x + wg.y * GRID_X) * RPW;
  if (r0 >= p.QR + p.KR) { return; }
  let lane = t % TPR;
  let r = qk_row(r0 + t / TPR);
  let tok = r.row / r.heads;
  let head = r.row % r.heads;
  // This row's first input element (its output rows stay r.base).
  let src = tok * select(p.k_ld, p.q_ld, r.is_q) + select(p.k_off, p.q_off, r.is_q) + head * p.D;
  var s = 0.0;
  if (r.valid) { s = sum_squares(r.is_q, src, lane); }
  partial[t] = s;
  reduce_rows(t, lane);
  if (!r.valid) { return; }
  let inv = inverseSqrt(partial[t - lane] / f32(p.D) + p.eps);
  let half = p.D / 2u;
  let pos = min(positions[tok], p.max_pos - 1u);
  // Keys: where the row lands in the cache (nothing is written past the last slot).
  let slot = ctrl[0] + tok % p.T;
  let cache_row = p.row0 + tok / p.T;
  let width = p.HKV * p.D;
  let dst = (cache_row * p.S + slot) * width + head * p.D;
  if (!r.is_q && slot >= p.S) { return; }
  let vsrc = tok * p.v_ld + p.v_off + head * p.D;
  if (!r.is_q && KV_F16) {
    // Packed f16: the pairs (i, i + 1) of the key and value rows, one word each.
    for (var i = lane * 2u; i < p.D; i += TPR * 2u) {
      let kk = vec2f(key_at(src, i, half, inv, pos), key_at(src, i + 1u, half, inv, pos));
      k_cache[(dst + i) / 2u] = bitcast<KvWord>(pack_kv(kk));
      v_cache[(dst + i) / 2u] = bitcast<KvWord>(pack_kv(vec2f(v[vsrc + i], v[vsrc + i + 1u])));
    }
  } else {
    for (var i = lane; i < half; i += TPR) {
      let y = norm_rope(r.is_q, src, i, half, inv, rope_cs(pos, half, i));
      if (r.is_q) {
        q[r.base + i] = y.x;
        q[r.base + i + half] = y.y;
      } else {
        k_cache[dst + i] = bitcast<KvWord>(y.x);
        k_cache[dst + i + half] = bitcast<KvWord>(y.y);
      }
    }
    if (r.is_q) { return; }
    for (var i = lane; i < p.D; i += TPR) { v_cache[dst + i] = bitcast<KvWord>(v[vsrc + i]); }
  }
  if (lane == 0u && head == 0u) { mask[cache_row * p.S + slot] = 1u; }
}
