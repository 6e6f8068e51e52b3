// attention: causal grouped-query attention with a key mask, one workgroup per (b, i, h).
//   q   [B, Tq, Hq, D]   queries of positions q_start + i (i < Tq)
//   k,v [B, S, Hkv, D]   keys/values of cache slots j < S (S = capacity, the batch stride)
//   mask [B, S] (u32)    1 where slot j holds a real token
//   o   [B, Tq, Hq, D]   softmax_j(q·k_j · scale) · v_j over j <= q_start + i, j < kv_len, mask=1
// Query head h reads kv head h / (Hq / Hkv). A query with no visible key gets o = 0.
// Online softmax over chunks of 64 keys (each thread scores one key of the chunk, then every
// thread folds the chunk into the outputs d = t, t + 64, ... it owns: attend_row in
// _attention_rows.wgsl, which attention.ts appends), so S is unbounded; D <= 256.
// Prefill-sized query blocks get attention_flash.wgsl instead, decode steps over a long cache with
// few (row, head) pairs attention_split.wgsl (attention.ts picks).
// k and v: f32, or a packed-f16 KV cache (read through _kv_load.wgsl, appended by attention.ts).
// Reads q, k, v, mask; writes o. Tolerance vs f64 reference: rel 1e-5 (f32; f16 k and v: against
// the reference over the same f16 values, as they widen to f32 exactly).
struct Params {
  B: u32, Tq: u32, S: u32, kv_len: u32,
  q_start: u32, Hq: u32, Hkv: u32, D: u32,
  scale: f32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<KvWord>;
@group(0) @binding(2) var<storage, read> v: array<KvWord>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> qs: array<f32, 256>;
var<workgroup> scores: array<f32, 64>;

const NEG_INF = -3.0e38;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let item = wg.x + wg.y * GRID_X;
  if (item >= p.B * p.Tq * p.Hq) { return; }
  let h = item % p.Hq;
  let i = (item / p.Hq) % p.Tq;
  let b = item / (p.Hq * p.Tq);
  let hk = h / (p.Hq / p.Hkv);
  let q_base = ((b * p.Tq + i) * p.Hq + h) * p.D;
  for (var d = t; d < p.D; d += 64u) { qs[d] = q[q_base + d]; }
  workgroupBarrier();

  let end = min(p.kv_len, p.q_start + i + 1u);
  let r = attend_row(b, hk, 0u, end, t);
  let inv = select(0.0, 1.0 / r.l, r.l > 0.0);
  for (var c = 0u; c < 4u; c++) {
    let d = t + c * 64u;
    if (d < p.D) { o[q_base + d] = r.acc[c] * inv; }
  }
}
