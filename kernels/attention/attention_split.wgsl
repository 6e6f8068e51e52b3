// attention_split: the product of attention.wgsl (same q, k, v, mask, o, masks and causality) with
// the keys split into chunks handled by separate workgroups (flash-decoding), for few queries over
// a long cache. Two dispatches, main or grouped then combine (their bindings overlap in number):
//   main     one workgroup of 64 threads per ((b, i, h), chunk c): the rows kernel's online
//            softmax (attend_row, _attention_rows.wgsl, appended by attention.ts) over the slots
//            [c * chunk, (c + 1) * chunk) in blocks of 64 (each thread scores one key, then folds
//            the block into the outputs d = t, t + 64, ... it owns);
//            writes the chunk's running max m, sum l = Σ exp(s - m) and unnormalised
//            acc = Σ exp(s - m) v to scratch[((b, i, h), c)] = (m, l, acc[D]).
//   grouped  the same partial sums, one workgroup per (b, kv head, chunk) for the Tq * G <= 8
//            (query, head) rows of the kv head's group (D % 4 == 0; see below).
//   combine  one workgroup of 64 threads per (b, i, h): M = max_c m_c, w_c = exp(m_c - M),
//            o = Σ_c w_c acc_c / Σ_c w_c l_c (chunks in order: deterministic). A query that sees
//            no key (every m_c = -3e38) gets o = 0.
// scratch [B, Tq, Hq, chunks, D + 2] (f32). D <= 256; chunk a multiple of 64. The loops run over
// blocks of 64 keys of one chunk with inner loops over d and the block (main: D + 128 or so
// iterations a block, grouped: D / 4 + 68), and over the chunks in combine: Mesa's 65,535-iteration
// limit (see kernels/matmul/matmul.wgsl) allows chunks of about 16,000 keys (main, D = 256).
// k and v: f32, or a packed-f16 KV cache (read through _kv_load.wgsl, appended by attention.ts).
// Tolerance vs f64 reference: rel 1e-5 (f32; f16 k and v: against the reference over the same
// f16 values).
struct Params {
  B: u32, Tq: u32, S: u32, kv_len: u32,
  q_start: u32, Hq: u32, Hkv: u32, D: u32,
  scale: f32, chunk: u32, chunks: u32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<KvWord>;
@group(0) @binding(2) var<storage, read> v: array<KvWord>;
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
  let r = attend_row(b, hk, begin, end, t);
  let out = task * (p.D + 2u);
  if (t == 0u) {
    scratch[out] = r.m;
    scratch[out + 1u] = r.l;
  }
  for (var c = 0u; c < 4u; c++) {
    let d = t + c * 64u;
    if (d < p.D) { scratch[out + 2u + d] = r.acc[c]; }
  }
}

// ---- grouped: the partial sums of main, one workgroup per (b, kv head, chunk) for all rows ----
// Rows are the (query i, query head h) pairs of the kv head's group, R = i * G + g with
// G = Hq / Hkv, h = hk * G + g (Tq * G <= 8, D % 4 == 0), so the G heads that share a kv head
// share each key and value read. Per block of 64 keys: thread t scores key t against every row
// (the rows' queries in shared memory); threads (row t / 8, segment t % 8) take the maxima of 8
// scores; every thread updates the rows' running max and sum (the same values in every thread)
// and turns its key's scores into probabilities; then each thread folds the block into its
// outputs d = t, t + 64, ... of every row. Same scratch entries as main.

const GR = 8u; // most rows per workgroup

var<workgroup> gq: array<f32, 2048>; // [GR][256] the rows' queries, pre-scaled
var<workgroup> gs: array<f32, 512>; // [GR][64] the block's scores, then probabilities
var<workgroup> gmx: array<f32, 64>; // [GR][8] maxima of 8 scores

var<private> gsc: array<f32, 8>; // the thread's key's score per row
var<private> gm: array<f32, 8>; // per row: running max (the same in every thread)
var<private> gsum: array<f32, 8>; // per row: running sum (likewise)
var<private> gacc: array<vec4f, 8>; // per row: the thread's outputs d = t + 64c (component c)

// Query index (b, i, h) of row R.
fn grow(b: u32, hk: u32, g: u32, R: u32) -> u32 {
  return (b * p.Tq + R / g) * p.Hq + hk * g + R % g;
}

fn gdot(r: u32, d: u32, kv: vec4f, rows: u32) {
  if (r >= rows) { return; }
  let o = r * 256u + d;
  gsc[r] = fma(gq[o], kv.x, fma(gq[o + 1u], kv.y, fma(gq[o + 2u], kv.z, fma(gq[o + 3u], kv.w, gsc[r]))));
}

// Score of the thread's key for row r (NEG_INF where not visible) to shared memory.
fn gput(r: u32, t: u32, j: u32, ok: bool, g: u32, rows: u32) {
  if (r >= rows) { return; }
  gs[r * 64u + t] = select(NEG_INF, gsc[r], ok && j <= p.q_start + r / g);
  gsc[r] = 0.0;
}

fn gseg(t: u32) {
  let o = t * 8u;
  gmx[t] = max(
    max(max(gs[o], gs[o + 1u]), max(gs[o + 2u], gs[o + 3u])),
    max(max(gs[o + 4u], gs[o + 5u]), max(gs[o + 6u], gs[o + 7u])),
  );
}

// Row r's new running max; rescales its outputs and sum; its probability of the thread's key.
fn gupdate(r: u32, t: u32, rows: u32) {
  if (r >= rows) { return; }
  let o = r * 8u;
  let cm = max(
    max(max(gmx[o], gmx[o + 1u]), max(gmx[o + 2u], gmx[o + 3u])),
    max(max(gmx[o + 4u], gmx[o + 5u]), max(gmx[o + 6u], gmx[o + 7u])),
  );
  let m_new = max(gm[r], cm);
  if (m_new > NEG_INF) {
    let corr = exp(gm[r] - m_new);
    gacc[r] *= corr;
    gsum[r] *= corr;
    gm[r] = m_new;
  }
  let e = r * 64u + t;
  let s = gs[e];
  gs[e] = select(0.0, exp(s - m_new), s > NEG_INF);
}

fn gadd(r: u32, u: u32, vv: vec4f, rows: u32) {
  if (r >= rows) { return; }
  let pr = gs[r * 64u + u];
  gsum[r] += pr;
  gacc[r] = fma(vec4f(pr), vv, gacc[r]);
}

fn gstore(r: u32, b: u32, hk: u32, g: u32, rows: u32, ch: u32, t: u32) {
  if (r >= rows) { return; }
  let out = (grow(b, hk, g, r) * p.chunks + ch) * (p.D + 2u);
  if (t == 0u) {
    scratch[out] = gm[r];
    scratch[out + 1u] = gsum[r];
  }
  for (var c = 0u; c < 4u; c++) {
    let d = t + c * 64u;
    if (d < p.D) { scratch[out + 2u + d] = gacc[r][c]; }
  }
}

@compute @workgroup_size(64)
fn grouped(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let task = wg.x + wg.y * GRID_X;
  if (task >= p.B * p.Hkv * p.chunks) { return; }
  let ch = task % p.chunks;
  let hk = (task / p.chunks) % p.Hkv;
  let b = task / (p.chunks * p.Hkv);
  let g = p.Hq / p.Hkv;
  let rows = p.Tq * g;
  for (var e = t; e < rows * 256u; e += 64u) {
    let r = e / 256u;
    let d = e % 256u;
    var x = 0.0;
    if (d < p.D) { x = q[grow(b, hk, g, r) * p.D + d] * p.scale; }
    gq[e] = x;
  }
  for (var r = 0u; r < GR; r++) { gm[r] = NEG_INF; }
  workgroupBarrier();

  let begin = ch * p.chunk;
  let end = min(min(p.kv_len, p.S), min(p.q_start + p.Tq, begin + p.chunk));
  let kv_stride = p.Hkv * p.D;
  let kv_base = b * p.S * kv_stride + hk * p.D;
  for (var j0 = begin; j0 < end; j0 += 64u) {
    let j = j0 + t;
    let ok = j < end && mask[b * p.S + min(j, p.S - 1u)] != 0u;
    if (ok) {
      let kb = kv_base + j * kv_stride;
      for (var d = 0u; d < p.D; d += 4u) {
        let kv = load_k4(kb + d);
        gdot(0u, d, kv, rows);
        gdot(1u, d, kv, rows);
        gdot(2u, d, kv, rows);
        gdot(3u, d, kv, rows);
        gdot(4u, d, kv, rows);
        gdot(5u, d, kv, rows);
        gdot(6u, d, kv, rows);
        gdot(7u, d, kv, rows);
      }
    }
    gput(0u, t, j, ok, g, rows);
    gput(1u, t, j, ok, g, rows);
    gput(2u, t, j, ok, g, rows);
    gput(3u, t, j, ok, g, rows);
    gput(4u, t, j, ok, g, rows);
    gput(5u, t, j, ok, g, rows);
    gput(6u, t, j, ok, g, rows);
    gput(7u, t, j, ok, g, rows);
    workgroupBarrier();
    if (t < rows * 8u) { gseg(t); }
    workgroupBarrier();
    gupdate(0u, t, rows);
    gupdate(1u, t, rows);
    gupdate(2u, t, rows);
    gupdate(3u, t, rows);
    gupdate(4u, t, rows);
    gupdate(5u, t, rows);
    gupdate(6u, t, rows);
    gupdate(7u, t, rows);
    workgroupBarrier();
    let n = min(64u, end - j0);
    for (var u = 0u; u < n; u++) {
      let vb = kv_base + (j0 + u) * kv_stride;
      var vv = vec4f(0.0);
      for (var c = 0u; c < 4u; c++) {
        let d = t + c * 64u;
        if (d < p.D) { vv[c] = load_v(vb + d); }
      }
      gadd(0u, u, vv, rows);
      gadd(1u, u, vv, rows);
      gadd(2u, u, vv, rows);
      gadd(3u, u, vv, rows);
      gadd(4u, u, vv, rows);
      gadd(5u, u, vv, rows);
      gadd(6u, u, vv, rows);
      gadd(7u, u, vv, rows);
    }
    workgroupBarrier();
  }
  gstore(0u, b, hk, g, rows, ch, t);
  gstore(1u, b, hk, g, rows, ch, t);
  gstore(2u, b, hk, g, rows, ch, t);
  gstore(3u, b, hk, g, rows, ch, t);
  gstore(4u, b, hk, g, rows, ch, t);
  gstore(5u, b, hk, g, rows, ch, t);
  gstore(6u, b, hk, g, rows, ch, t);
  gstore(7u, b, hk, g, rows, ch, t);
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
