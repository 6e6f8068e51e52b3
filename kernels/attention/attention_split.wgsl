// attention_split: the product of attention.wgsl (same q, k, v, mask, o, masks and causality) with
// the keys split into chunks handled by separate workgroups (flash-decoding), for few queries over
// a long cache. Two entry points, recorded in this order (their bindings overlap in number):
//   main     one workgroup of 64 threads per ((b, i, h), chunk c): the rows kernel's online
//            softmax over the slots [c * chunk, (c + 1) * chunk) in blocks of 64 (each thread
//            scores one key, then folds the block into the outputs d = t, t + 64, ... it owns);
//            writes the chunk's running max m, sum l = Σ exp(s - m) and unnormalised
//            acc = Σ exp(s - m) v to scratch[((b, i, h), c)] = (m, l, acc[D]).
//   combine  one workgroup of 64 threads per (b, i, h): M = max_c m_c, w_c = exp(m_c - M),
//            o = Σ_c w_c acc_c / Σ_c w_c l_c (chunks in order: deterministic). A query that sees
//            no key (every m_c = -3e38) gets o = 0.
// scratch [B, Tq, Hq, chunks, D + 2] (f32). D <= 256; chunk a multiple of 64.
// Tolerance vs f64 reference: rel 1e-5 (f32).
struct Params {
  B: u32, Tq: u32, S: u32, kv_len: u32,
  q_start: u32, Hq: u32, Hkv: u32, D: u32,
  scale: f32, chunk: u32, chunks: u32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> qs: array<f32, 256>;
var<workgroup> scores: array<f32, 64>;

const NEG_INF = -3.0e38;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let task = wg.x + wg.y * GRID_X;
  if (task >= p.B * p.Tq * p.Hq * p.chunks) { return; }
  let ch = task % p.chunks;
  let item = task / p.chunks;
  let h = item % p.Hq;
  let i = (item / p.Hq) % p.Tq;
  let b = item / (p.Hq * p.Tq);
  let hk = h / (p.Hq / p.Hkv);
  let q_base = item * p.D;
  for (var d = t; d < p.D; d += 64u) { qs[d] = q[q_base + d]; }
  workgroupBarrier();

  let begin = ch * p.chunk;
  let end = min(min(p.kv_len, p.S), min(p.q_start + i + 1u, begin + p.chunk));
  let kv_stride = p.Hkv * p.D;
  let kv_base = b * p.S * kv_stride + hk * p.D;
  var m = NEG_INF;
  var l = 0.0;
  var acc = vec4f(0.0);
  for (var j0 = begin; j0 < end; j0 += 64u) {
    let j = j0 + t;
    var s = NEG_INF;
    if (j < end && mask[b * p.S + j] != 0u) {
      let kb = kv_base + j * kv_stride;
      var dot = 0.0;
      for (var d = 0u; d < p.D; d++) { dot = fma(qs[d], k[kb + d], dot); }
      s = dot * p.scale;
    }
    scores[t] = s;
    workgroupBarrier();
    var cm = NEG_INF;
    for (var u = 0u; u < 64u; u++) { cm = max(cm, scores[u]); }
    let m_new = max(m, cm);
    if (m_new > NEG_INF) {
      let corr = exp(m - m_new);
      l *= corr;
      acc *= corr;
      let n = min(64u, end - j0);
      for (var u = 0u; u < n; u++) {
        let su = scores[u];
        if (su > NEG_INF) {
          let pu = exp(su - m_new);
          l += pu;
          let vb = kv_base + (j0 + u) * kv_stride;
          for (var c = 0u; c < 4u; c++) {
            let d = t + c * 64u;
            if (d < p.D) { acc[c] = fma(pu, v[vb + d], acc[c]); }
          }
        }
      }
      m = m_new;
    }
    workgroupBarrier();
  }
  let out = task * (p.D + 2u);
  if (t == 0u) {
    scratch[out] = m;
    scratch[out + 1u] = l;
  }
  for (var c = 0u; c < 4u; c++) {
    let d = t + c * 64u;
    if (d < p.D) { scratch[out + 2u + d] = acc[c]; }
  }
}

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<uniform> pc: Params;

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let item = wg.x + wg.y * GRID_X;
  if (item >= pc.B * pc.Tq * pc.Hq) { return; }
  let w = pc.D + 2u;
  let first = item * pc.chunks * w;
  var mx = NEG_INF;
  for (var c = 0u; c < pc.chunks; c++) { mx = max(mx, partial[first + c * w]); }
  var l = 0.0;
  var acc = vec4f(0.0);
  if (mx > NEG_INF) {
    for (var c = 0u; c < pc.chunks; c++) {
      let base = first + c * w;
      let mc = partial[base];
      if (mc > NEG_INF) {
        let f = exp(mc - mx);
        l = fma(f, partial[base + 1u], l);
        for (var e = 0u; e < 4u; e++) {
          let d = t + e * 64u;
          if (d < pc.D) { acc[e] = fma(f, partial[base + 2u + d], acc[e]); }
        }
      }
    }
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var e = 0u; e < 4u; e++) {
    let d = t + e * 64u;
    if (d < pc.D) { o[item * pc.D + d] = acc[e] * inv; }
  }
}
