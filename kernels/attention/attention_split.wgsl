// attention_split: the product of attention.wgsl (same q, k, v, mask, o, masks and causality) with
// the keys split into chunks handled by separate workgroups (flash-decoding), for few queries over
// a long cache. Two dispatches, main or tiled then combine (their bindings overlap in number):
//   main     one workgroup of 64 threads per ((b, i, h), chunk c): the rows kernel's online
//            softmax over the slots [c * chunk, (c + 1) * chunk) in blocks of 64 (each thread
//            scores one key, then folds the block into the outputs d = t, t + 64, ... it owns);
//            writes the chunk's running max m, sum l = Σ exp(s - m) and unnormalised
//            acc = Σ exp(s - m) v to scratch[((b, i, h), c)] = (m, l, acc[D]).
//   tiled    the same partial sums, one workgroup per (b, kv head, chunk) for the Tq * G <= 8
//            (query, head) rows of the kv head's group (D <= 128, D % 4 == 0; see below).
//   combine  one workgroup of 64 threads per (b, i, h): M = max_c m_c, w_c = exp(m_c - M),
//            o = Σ_c w_c acc_c / Σ_c w_c l_c (chunks in order: deterministic). A query that sees
//            no key (every m_c = -3e38) gets o = 0.
// scratch [B, Tq, Hq, chunks, D + 2] (f32). D <= 256; chunk a multiple of 64. The loops run over
// the blocks of one chunk (main: 64 keys with inner loops; tiled: 16 keys, inlined steps), the
// chunk count over the combine's, well under Mesa's 65,535-iteration limit for decode caches.
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

// ---- tiled: the partial sums of main, one workgroup per (b, kv head, chunk) for all rows ----
// Rows are the (query i, query head h) pairs of the kv head's group, R = i * G + g with
// G = Hq / Hkv, h = hk * G + g (Tq * G <= 8), so the G heads that share a kv head share its key
// and value reads. The chunk's keys go by in blocks of 16: thread t scores key t / 4 against every
// row over the quarter t % 4 of d (vec4 loads, D <= 128, D % 4 == 0) into shared memory; then
// threads fold the quarters and mask (2 pairs each), rows 0..7 update their running max and sum
// (threads 0..7) and write the block's probabilities, and thread t adds them times the values'
// vec4 t % 32 to its rows t / 32, t / 32 + 2, ... Same scratch entries as main.

const TR = 8u; // rows per workgroup
const TK = 16u; // keys per block
const TDV = 32u; // vec4s of a padded head (128 / 4)

var<workgroup> tq_s: array<vec4f, 256>; // [TR][TDV] the rows' queries, pre-scaled
var<workgroup> tpart: array<vec4f, 128>; // [TR][TK] partial dots, one lane per quarter of d
var<workgroup> tp: array<f32, 128>; // [TR][TK] scores, then probabilities
var<workgroup> tcorr: array<f32, 8>; // per row: the block's rescaling of the running sums
var<workgroup> tv: array<vec4f, 512>; // [TK][TDV] the block's values

var<private> kq: array<vec4f, 8>; // the thread's key quarter
var<private> tacc: array<vec4f, 4>; // the thread's vec4 of its rows' outputs

// Loads vec4 e (of 512) of the value tile of the block at j0 (zeros past D or past end).
fn tload_v(e: u32, kv_base: u32, kv_stride: u32, j0: u32, end: u32) {
  let c = e / TDV;
  let dv = e % TDV;
  let j = j0 + c;
  var vv = vec4f(0.0);
  if (j < end && 4u * dv < p.D) {
    let base = kv_base + j * kv_stride + 4u * dv;
    vv = vec4f(v[base], v[base + 1u], v[base + 2u], v[base + 3u]);
  }
  tv[e] = vv;
}

// Query index (b, i, h) of row R.
fn trow(b: u32, hk: u32, g: u32, R: u32) -> u32 {
  return (b * p.Tq + R / g) * p.Hq + hk * g + R % g;
}

fn tload_q(e: u32, b: u32, hk: u32, g: u32, rows: u32) {
  let r = e / TDV;
  let dv = e % TDV;
  var val = vec4f(0.0);
  if (r < rows && 4u * dv < p.D) {
    let base = trow(b, hk, g, r) * p.D + 4u * dv;
    val = vec4f(q[base], q[base + 1u], q[base + 2u], q[base + 3u]) * p.scale;
  }
  tq_s[e] = val;
}

fn tload_k(jj: u32, base: u32, qd: u32, ok: bool) {
  let d = 4u * (qd + 4u * jj);
  var val = vec4f(0.0);
  if (ok && d < p.D) { val = vec4f(k[base + d], k[base + d + 1u], k[base + d + 2u], k[base + d + 3u]); }
  kq[jj] = val;
}

fn tdot(r: u32, c: u32, qd: u32, rows: u32) {
  if (r >= rows) { return; }
  let o = r * TDV + qd;
  tpart[r * TK + c][qd] = dot(kq[0], tq_s[o]) + dot(kq[1], tq_s[o + 4u]) +
    dot(kq[2], tq_s[o + 8u]) + dot(kq[3], tq_s[o + 12u]) + dot(kq[4], tq_s[o + 16u]) +
    dot(kq[5], tq_s[o + 20u]) + dot(kq[6], tq_s[o + 24u]) + dot(kq[7], tq_s[o + 28u]);
}

// Score of pair e = (row e / 16, key e % 16) of the block at j0, NEG_INF where not visible.
fn tscore(e: u32, b: u32, g: u32, rows: u32, j0: u32, end: u32) {
  let r = e / TK;
  let j = j0 + e % TK;
  let ok = r < rows && j < end && j <= p.q_start + r / g && mask[b * p.S + min(j, p.S - 1u)] != 0u;
  let x = tpart[e];
  tp[e] = select(NEG_INF, (x.x + x.y) + (x.z + x.w), ok);
}

// Block max of row r's 16 scores.
fn tmax(r: u32) -> f32 {
  let o = r * TK;
  var x = max(max(tp[o], tp[o + 1u]), max(tp[o + 2u], tp[o + 3u]));
  x = max(x, max(max(tp[o + 4u], tp[o + 5u]), max(tp[o + 6u], tp[o + 7u])));
  x = max(x, max(max(tp[o + 8u], tp[o + 9u]), max(tp[o + 10u], tp[o + 11u])));
  return max(x, max(max(tp[o + 12u], tp[o + 13u]), max(tp[o + 14u], tp[o + 15u])));
}

// Turns score c of row r into exp(s - m) (0 where not visible); returns it.
fn tprob(r: u32, c: u32, m: f32) -> f32 {
  let e = r * TK + c;
  let x = select(0.0, exp(tp[e] - m), tp[e] > NEG_INF);
  tp[e] = x;
  return x;
}

// tacc[u] += P[row, c] · V[c] (vec4 dv) for the thread's rows t / 32 + 2u (those that exist).
fn tadd_v(c: u32, dv: u32, r0: u32, rows: u32) {
  let vv = tv[c * TDV + dv];
  tacc[0] = fma(vec4f(tp[r0 * TK + c]), vv, tacc[0]);
  if (rows <= 2u) { return; }
  tacc[1] = fma(vec4f(tp[(r0 + 2u) * TK + c]), vv, tacc[1]);
  if (rows <= 4u) { return; }
  tacc[2] = fma(vec4f(tp[(r0 + 4u) * TK + c]), vv, tacc[2]);
  if (rows <= 6u) { return; }
  tacc[3] = fma(vec4f(tp[(r0 + 6u) * TK + c]), vv, tacc[3]);
}

fn tstore(u: u32, b: u32, hk: u32, g: u32, rows: u32, ch: u32, t: u32) {
  let r = t / TDV + 2u * u;
  let d = 4u * (t % TDV);
  if (r >= rows || d >= p.D) { return; }
  let out = (trow(b, hk, g, r) * p.chunks + ch) * (p.D + 2u) + 2u + d;
  scratch[out] = tacc[u].x;
  scratch[out + 1u] = tacc[u].y;
  scratch[out + 2u] = tacc[u].z;
  scratch[out + 3u] = tacc[u].w;
}

@compute @workgroup_size(64)
fn tiled(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let task = wg.x + wg.y * GRID_X;
  if (task >= p.B * p.Hkv * p.chunks) { return; }
  let ch = task % p.chunks;
  let hk = (task / p.chunks) % p.Hkv;
  let b = task / (p.chunks * p.Hkv);
  let g = p.Hq / p.Hkv;
  let rows = p.Tq * g;
  tload_q(t, b, hk, g, rows);
  tload_q(t + 64u, b, hk, g, rows);
  tload_q(t + 128u, b, hk, g, rows);
  tload_q(t + 192u, b, hk, g, rows);

  let begin = ch * p.chunk;
  let end = min(min(p.kv_len, p.S), min(p.q_start + p.Tq, begin + p.chunk));
  let kv_stride = p.Hkv * p.D;
  let kv_base = b * p.S * kv_stride + hk * p.D;
  let c = t / 4u;
  let qd = t % 4u;
  let dv = t % TDV;
  let r0 = t / TDV;
  var m = NEG_INF; // threads t < 8: row t's running max and sum
  var l = 0.0;
  workgroupBarrier();
  for (var j0 = begin; j0 < end; j0 += TK) {
    let j = j0 + c;
    let base = kv_base + min(j, p.S - 1u) * kv_stride;
    let ok = j < end;
    tload_k(0u, base, qd, ok);
    tload_k(1u, base, qd, ok);
    tload_k(2u, base, qd, ok);
    tload_k(3u, base, qd, ok);
    tload_k(4u, base, qd, ok);
    tload_k(5u, base, qd, ok);
    tload_k(6u, base, qd, ok);
    tload_k(7u, base, qd, ok);
    tdot(0u, c, qd, rows);
    tdot(1u, c, qd, rows);
    tdot(2u, c, qd, rows);
    tdot(3u, c, qd, rows);
    tdot(4u, c, qd, rows);
    tdot(5u, c, qd, rows);
    tdot(6u, c, qd, rows);
    tdot(7u, c, qd, rows);
    tload_v(t, kv_base, kv_stride, j0, end);
    tload_v(t + 64u, kv_base, kv_stride, j0, end);
    tload_v(t + 128u, kv_base, kv_stride, j0, end);
    tload_v(t + 192u, kv_base, kv_stride, j0, end);
    tload_v(t + 256u, kv_base, kv_stride, j0, end);
    tload_v(t + 320u, kv_base, kv_stride, j0, end);
    tload_v(t + 384u, kv_base, kv_stride, j0, end);
    tload_v(t + 448u, kv_base, kv_stride, j0, end);
    workgroupBarrier();
    if (t < TR) {
      let e = t * TK;
      tscore(e, b, g, rows, j0, end);
      tscore(e + 1u, b, g, rows, j0, end);
      tscore(e + 2u, b, g, rows, j0, end);
      tscore(e + 3u, b, g, rows, j0, end);
      tscore(e + 4u, b, g, rows, j0, end);
      tscore(e + 5u, b, g, rows, j0, end);
      tscore(e + 6u, b, g, rows, j0, end);
      tscore(e + 7u, b, g, rows, j0, end);
      tscore(e + 8u, b, g, rows, j0, end);
      tscore(e + 9u, b, g, rows, j0, end);
      tscore(e + 10u, b, g, rows, j0, end);
      tscore(e + 11u, b, g, rows, j0, end);
      tscore(e + 12u, b, g, rows, j0, end);
      tscore(e + 13u, b, g, rows, j0, end);
      tscore(e + 14u, b, g, rows, j0, end);
      tscore(e + 15u, b, g, rows, j0, end);
      let m_new = max(m, tmax(t));
      var corr = 1.0;
      var sum = 0.0;
      if (m_new > NEG_INF) {
        corr = exp(m - m_new);
        sum = ((tprob(t, 0u, m_new) + tprob(t, 1u, m_new)) +
          (tprob(t, 2u, m_new) + tprob(t, 3u, m_new))) +
          ((tprob(t, 4u, m_new) + tprob(t, 5u, m_new)) +
            (tprob(t, 6u, m_new) + tprob(t, 7u, m_new)));
        sum += ((tprob(t, 8u, m_new) + tprob(t, 9u, m_new)) +
          (tprob(t, 10u, m_new) + tprob(t, 11u, m_new))) +
          ((tprob(t, 12u, m_new) + tprob(t, 13u, m_new)) +
            (tprob(t, 14u, m_new) + tprob(t, 15u, m_new)));
        m = m_new;
      }
      l = l * corr + sum;
      tcorr[t] = corr;
    }
    workgroupBarrier();
    tacc[0] *= tcorr[r0];
    tacc[1] *= tcorr[r0 + 2u];
    tacc[2] *= tcorr[r0 + 4u];
    tacc[3] *= tcorr[r0 + 6u];
    tadd_v(0u, dv, r0, rows);
    tadd_v(1u, dv, r0, rows);
    tadd_v(2u, dv, r0, rows);
    tadd_v(3u, dv, r0, rows);
    tadd_v(4u, dv, r0, rows);
    tadd_v(5u, dv, r0, rows);
    tadd_v(6u, dv, r0, rows);
    tadd_v(7u, dv, r0, rows);
    tadd_v(8u, dv, r0, rows);
    tadd_v(9u, dv, r0, rows);
    tadd_v(10u, dv, r0, rows);
    tadd_v(11u, dv, r0, rows);
    tadd_v(12u, dv, r0, rows);
    tadd_v(13u, dv, r0, rows);
    tadd_v(14u, dv, r0, rows);
    tadd_v(15u, dv, r0, rows);
    workgroupBarrier();
  }
  if (t < rows) {
    let out = (trow(b, hk, g, t) * p.chunks + ch) * (p.D + 2u);
    scratch[out] = m;
    scratch[out + 1u] = l;
  }
  tstore(0u, b, hk, g, rows, ch, t);
  tstore(1u, b, hk, g, rows, ch, t);
  tstore(2u, b, hk, g, rows, ch, t);
  tstore(3u, b, hk, g, rows, ch, t);
}

// ---- combine ----

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
