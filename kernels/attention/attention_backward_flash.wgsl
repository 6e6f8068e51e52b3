// attention_backward_flash: the gradients of attention_backward.wgsl (same bindings, entry points,
// Params, stats and results), tiled FlashAttention-2 style. Rows are the (query i, query head h)
// pairs of a kv head's group, R = i * G + g with G = Hq / Hkv and h = hk * G + g, so the G heads
// that share a kv head share its tiles. Layout, masks and causality as attention_backward.wgsl.
//   main  one workgroup of 64 threads per (b, kv head, block of 16 rows); thread t owns row t / 4
//         and the quarter t % 4 of d (vec4 indices qd + 4jj, jj < 8), with its query (pre-scaled),
//         its output gradient and its 32 dq accumulators in registers. The keys go by in blocks
//         of 8 whose K and V ([8][D], zero-padded to 128) are staged in shared memory for all 16
//         rows. One pass with an online softmax recomputes lse and delta = Σ P·dP and sums both
//         Σ e·dP·k and Σ e·k (e = exp(s - running max), rescaled as it grows), so that
//         dq = scale · (Σ e·dP·k - delta · Σ e·k) / Σ e. Writes dq and stats[(b, i, h)] =
//         (lse, delta).
//   dkv   one workgroup of 64 threads per (b, kv head, block of 16 key slots); thread t owns slot
//         t / 4 and the quarter t % 4 of d, with its key (pre-scaled), value and 64 dk/dv
//         accumulators in registers. The rows that see the block (i >= first slot - q_start, all
//         G heads) go by in blocks of 8 whose q, dO and stats are staged in shared memory for the
//         16 slots: dv += P·dO, dk += dS·q. Slots nobody sees get 0.
// Per block, partial dots over a quarter of d go to shared memory, each thread writing whole vec4s
// of its own (no invocation writes a component of a vec4 that another one writes: WGSL lets a
// component store rewrite the whole vector), and each thread sums the 4 quarters it needs (the 4
// threads of a row or slot do so identically). No atomics: every sum runs in a fixed order, so
// results are deterministic. Needs D % 4 == 0 and D <= 128 (the launcher falls back otherwise).
// The only loops are those over blocks (every inner step is an inlined call), for Mesa's
// 65,535-iteration loop limit (see kernels/matmul/matmul.wgsl): S <= 262,136.
// Tolerance vs f64 reference: rel 1e-5 (f32 online softmax and sums of a few hundred terms).
struct Params {
  B: u32, Tq: u32, S: u32, kv_len: u32,
  q_start: u32, Hq: u32, Hkv: u32, D: u32,
  scale: f32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read> d_o: array<f32>;

const BQ = 16u; // main: rows per workgroup; dkv: slots per workgroup
const BK = 8u; // main: keys per block; dkv: rows per block
const DV = 32u; // vec4s of a padded head (128 / 4)
// Vec4s jj of its quarter of d that a thread uses: ceil(D / 16), set by the launcher (default 8,
// the whole padded head). The slices jj >= DJ hold zeros in ra, rb and the tiles (d >= D), add +0
// to a dot and are never stored, so skipping them changes no result; at a tiny head (D = 4,
// DJ = 1) it cuts the dots and fmas of a block 8-fold.
override DJ: u32 = 8u;
const NEG_INF = -3.0e38;

// main: the key and value tiles [BK][DV]; dkv: the query and output-gradient tiles [BK][DV].
var<workgroup> ta: array<vec4f, 256>;
var<workgroup> tb: array<vec4f, 256>;
// Partial dots q·k (ps) and dO·v (pd), [BQ][4 quarters of d][2]: vec4 h of quarter qd of row r,
// [r * BK + 2 qd + h], holds the dots with keys (dkv: rows) 4h .. 4h + 3 over that quarter,
// written whole by thread 4r + qd.
var<workgroup> ps: array<vec4f, 128>;
var<workgroup> pd: array<vec4f, 128>;
// dkv: (lse, delta) of the block's rows.
var<workgroup> rstat: array<vec2f, 8>;

var<private> ra: array<vec4f, 8>; // main: the query (pre-scaled); dkv: the key (pre-scaled)
var<private> rb: array<vec4f, 8>; // main: the output gradient; dkv: the value
var<private> acc: array<vec4f, 8>; // main: Σ e·dP·k; dkv: dk
var<private> acc2: array<vec4f, 8>; // main: Σ e·k; dkv: dv
var<private> s: array<f32, 8>; // main: the row's scores of the current key block
var<private> dp: array<f32, 8>; // main: ... and its dO·v

// Shared across the workgroup (uniform).
var<private> b: u32;
var<private> hk: u32;
var<private> G: u32;
var<private> rows: u32;
var<private> kv_base: u32;
var<private> kv_stride: u32;
// The entry's uniform (main: p, dkv: p8; their bindings differ), copied so the helpers can share it.
var<private> prm: Params;

// ---- shared helpers ----

fn vload(buf_is_q: bool, base: u32) -> vec4f {
  if (buf_is_q) { return vec4f(q[base], q[base + 1u], q[base + 2u], q[base + 3u]); }
  return vec4f(d_o[base], d_o[base + 1u], d_o[base + 2u], d_o[base + 3u]);
}

fn kvload(buf_is_k: bool, base: u32) -> vec4f {
  if (buf_is_k) { return vec4f(k[base], k[base + 1u], k[base + 2u], k[base + 3u]); }
  return vec4f(v[base], v[base + 1u], v[base + 2u], v[base + 3u]);
}

// The thread's partial dot (its quarter qd of d) of its registers x with row c of tile.
fn dot_ta(c: u32, qd: u32) -> f32 {
  let o = c * DV + qd;
  // The terms in order, as the sum dot(ra[0], ..) + dot(ra[1], ..) + .. + dot(ra[7], ..).
  var sum = dot(ra[0], ta[o]);
  if (DJ > 1u) { sum += dot(ra[1], ta[o + 4u]); }
  if (DJ > 2u) { sum += dot(ra[2], ta[o + 8u]); }
  if (DJ > 3u) { sum += dot(ra[3], ta[o + 12u]); }
  if (DJ > 4u) { sum += dot(ra[4], ta[o + 16u]); }
  if (DJ > 5u) { sum += dot(ra[5], ta[o + 20u]); }
  if (DJ > 6u) { sum += dot(ra[6], ta[o + 24u]); }
  if (DJ > 7u) { sum += dot(ra[7], ta[o + 28u]); }
  return sum;
}

fn dot_tb(c: u32, qd: u32) -> f32 {
  let o = c * DV + qd;
  // The terms in order, as the sum dot(rb[0], ..) + dot(rb[1], ..) + .. + dot(rb[7], ..).
  var sum = dot(rb[0], tb[o]);
  if (DJ > 1u) { sum += dot(rb[1], tb[o + 4u]); }
  if (DJ > 2u) { sum += dot(rb[2], tb[o + 8u]); }
  if (DJ > 3u) { sum += dot(rb[3], tb[o + 12u]); }
  if (DJ > 4u) { sum += dot(rb[4], tb[o + 16u]); }
  if (DJ > 5u) { sum += dot(rb[5], tb[o + 20u]); }
  if (DJ > 6u) { sum += dot(rb[6], tb[o + 24u]); }
  if (DJ > 7u) { sum += dot(rb[7], tb[o + 28u]); }
  return sum;
}

// The dots of row r with rows 4h .. 4h + 3 (h = 0, 1) of the tiles: its 4 quarters in ps (pd)
// summed as (0 + 1) + (2 + 3).
fn sum_ps(r: u32, h: u32) -> vec4f {
  let o = r * BK + h;
  return (ps[o] + ps[o + 2u]) + (ps[o + 4u] + ps[o + 6u]);
}

fn sum_pd(r: u32, h: u32) -> vec4f {
  let o = r * BK + h;
  return (pd[o] + pd[o + 2u]) + (pd[o + 4u] + pd[o + 6u]);
}

// acc += f · ta[c] over the thread's quarter of d.
fn add_ta(c: u32, f: f32, qd: u32) {
  let o = c * DV + qd;
  acc[0] = fma(vec4f(f), ta[o], acc[0]);
  if (DJ > 1u) { acc[1] = fma(vec4f(f), ta[o + 4u], acc[1]); }
  if (DJ > 2u) { acc[2] = fma(vec4f(f), ta[o + 8u], acc[2]); }
  if (DJ > 3u) { acc[3] = fma(vec4f(f), ta[o + 12u], acc[3]); }
  if (DJ > 4u) { acc[4] = fma(vec4f(f), ta[o + 16u], acc[4]); }
  if (DJ > 5u) { acc[5] = fma(vec4f(f), ta[o + 20u], acc[5]); }
  if (DJ > 6u) { acc[6] = fma(vec4f(f), ta[o + 24u], acc[6]); }
  if (DJ > 7u) { acc[7] = fma(vec4f(f), ta[o + 28u], acc[7]); }
}

// acc2 += f · tb[c] over the thread's quarter of d.
fn add_tb(c: u32, f: f32, qd: u32) {
  let o = c * DV + qd;
  acc2[0] = fma(vec4f(f), tb[o], acc2[0]);
  if (DJ > 1u) { acc2[1] = fma(vec4f(f), tb[o + 4u], acc2[1]); }
  if (DJ > 2u) { acc2[2] = fma(vec4f(f), tb[o + 8u], acc2[2]); }
  if (DJ > 3u) { acc2[3] = fma(vec4f(f), tb[o + 12u], acc2[3]); }
  if (DJ > 4u) { acc2[4] = fma(vec4f(f), tb[o + 16u], acc2[4]); }
  if (DJ > 5u) { acc2[5] = fma(vec4f(f), tb[o + 20u], acc2[5]); }
  if (DJ > 6u) { acc2[6] = fma(vec4f(f), tb[o + 24u], acc2[6]); }
  if (DJ > 7u) { acc2[7] = fma(vec4f(f), tb[o + 28u], acc2[7]); }
}

// Index (b, i, h) of row R of the group's rows, and its element base in the query-shaped buffers.
fn row_index(R: u32) -> u32 {
  return (b * prm.Tq + R / G) * prm.Hq + hk * G + R % G;
}

fn row_base(R: u32) -> u32 {
  return row_index(R) * prm.D;
}

// Whether slot j holds a visible key (in the cache's filled part and unmasked).
fn key_ok(j: u32) -> bool {
  return j < prm.kv_len && j < prm.S && mask[b * prm.S + min(j, prm.S - 1u)] != 0u;
}

// The vec4s at element `base` of K and V (kv) or of q and dO.
fn pair(base: u32, kv: bool) -> array<vec4f, 2> {
  if (kv) { return array(kvload(true, base), kvload(false, base)); }
  return array(vload(true, base), vload(false, base));
}

// Stages vec4 e (of 256) of the tiles: ta[e], tb[e] = pair(base, kv), zeros unless ok.
fn stage(e: u32, base: u32, ok: bool, kv: bool) {
  var xy = array<vec4f, 2>();
  if (ok) { xy = pair(base, kv); }
  ta[e] = xy[0];
  tb[e] = xy[1];
}

// The thread's registers ra[jj] (scaled) and rb[jj]: vec4 jj of its quarter qd of d of the row
// at element `base` of q and dO (main) or of the slot in K and V (dkv, kv); zeros unless ok.
fn own(jj: u32, base: u32, qd: u32, ok: bool, kv: bool) {
  let d = 4u * (qd + 4u * jj);
  var xy = array<vec4f, 2>();
  if (ok && d < prm.D) { xy = pair(base + d, kv); }
  ra[jj] = xy[0] * prm.scale;
  rb[jj] = xy[1];
}

// All 16 partial dots (quarter qd) of row r with the 8 rows of the staged tiles, to shared memory
// as the 4 whole vec4s of the thread, then a barrier.
fn block_dots(r: u32, qd: u32) {
  let w = r * BK + 2u * qd;
  ps[w] = vec4f(dot_ta(0u, qd), dot_ta(1u, qd), dot_ta(2u, qd), dot_ta(3u, qd));
  ps[w + 1u] = vec4f(dot_ta(4u, qd), dot_ta(5u, qd), dot_ta(6u, qd), dot_ta(7u, qd));
  pd[w] = vec4f(dot_tb(0u, qd), dot_tb(1u, qd), dot_tb(2u, qd), dot_tb(3u, qd));
  pd[w + 1u] = vec4f(dot_tb(4u, qd), dot_tb(5u, qd), dot_tb(6u, qd), dot_tb(7u, qd));
  workgroupBarrier();
}

// ---- main: dq and the row statistics ----

@group(0) @binding(5) var<storage, read_write> dq: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

// Score of key c from its q·k `qk` (NEG_INF when the key is not visible) and its dO·v `dov`.
fn score(qk: f32, dov: f32, c: u32, j0: u32, last: u32, row_ok: bool) {
  let j = j0 + c;
  let ok = row_ok && j <= last && key_ok(j);
  s[c] = select(NEG_INF, qk, ok);
  dp[c] = dov;
}

// The block's scores of the thread's row (after the tiles are loaded).
fn block_scores(r: u32, qd: u32, j0: u32, last: u32, row_ok: bool) {
  block_dots(r, qd);
  let s_lo = sum_ps(r, 0u);
  let s_hi = sum_ps(r, 1u);
  let d_lo = sum_pd(r, 0u);
  let d_hi = sum_pd(r, 1u);
  score(s_lo.x, d_lo.x, 0u, j0, last, row_ok);
  score(s_lo.y, d_lo.y, 1u, j0, last, row_ok);
  score(s_lo.z, d_lo.z, 2u, j0, last, row_ok);
  score(s_lo.w, d_lo.w, 3u, j0, last, row_ok);
  score(s_hi.x, d_hi.x, 4u, j0, last, row_ok);
  score(s_hi.y, d_hi.y, 5u, j0, last, row_ok);
  score(s_hi.z, d_hi.z, 6u, j0, last, row_ok);
  score(s_hi.w, d_hi.w, 7u, j0, last, row_ok);
}

// Stages vec4 e (of 256) of the K and V tiles of the key block at j0 (zeros past D or end).
fn load_kv(e: u32, j0: u32, end: u32) {
  let j = j0 + e / DV;
  let d = 4u * (e % DV);
  stage(e, kv_base + j * kv_stride + d, j < end && d < prm.D, true);
}

fn load_tiles(t: u32, j0: u32, end: u32) {
  load_kv(t, j0, end);
  load_kv(t + 64u, j0, end);
  load_kv(t + 128u, j0, end);
  load_kv(t + 192u, j0, end);
  workgroupBarrier();
}

// Key c of the block with e = exp(s - m) (0 where not visible): acc += e dP · K[c],
// acc2 += e · K[c]; returns e.
fn add_key(c: u32, m: f32, qd: u32) -> f32 {
  let e = exp(s[c] - m);
  add_ta(c, e * dp[c], qd);
  let o = c * DV + qd;
  acc2[0] = fma(vec4f(e), ta[o], acc2[0]);
  if (DJ > 1u) { acc2[1] = fma(vec4f(e), ta[o + 4u], acc2[1]); }
  if (DJ > 2u) { acc2[2] = fma(vec4f(e), ta[o + 8u], acc2[2]); }
  if (DJ > 3u) { acc2[3] = fma(vec4f(e), ta[o + 12u], acc2[3]); }
  if (DJ > 4u) { acc2[4] = fma(vec4f(e), ta[o + 16u], acc2[4]); }
  if (DJ > 5u) { acc2[5] = fma(vec4f(e), ta[o + 20u], acc2[5]); }
  if (DJ > 6u) { acc2[6] = fma(vec4f(e), ta[o + 24u], acc2[6]); }
  if (DJ > 7u) { acc2[7] = fma(vec4f(e), ta[o + 28u], acc2[7]); }
  return e;
}

fn scale_accs(f: f32) {
  acc[0] *= f;
  if (DJ > 1u) { acc[1] *= f; }
  if (DJ > 2u) { acc[2] *= f; }
  if (DJ > 3u) { acc[3] *= f; }
  if (DJ > 4u) { acc[4] *= f; }
  if (DJ > 5u) { acc[5] *= f; }
  if (DJ > 6u) { acc[6] *= f; }
  if (DJ > 7u) { acc[7] *= f; }
  acc2[0] *= f;
  if (DJ > 1u) { acc2[1] *= f; }
  if (DJ > 2u) { acc2[2] *= f; }
  if (DJ > 3u) { acc2[3] *= f; }
  if (DJ > 4u) { acc2[4] *= f; }
  if (DJ > 5u) { acc2[5] *= f; }
  if (DJ > 6u) { acc2[6] *= f; }
  if (DJ > 7u) { acc2[7] *= f; }
}

// dq = f · (acc - delta · acc2), f = scale / l.
fn store_dq(jj: u32, base: u32, qd: u32, delta: f32, f: f32) {
  let d = 4u * (qd + 4u * jj);
  if (d >= prm.D) { return; }
  let val = (acc[jj] - delta * acc2[jj]) * f;
  dq[base + d] = val.x;
  dq[base + d + 1u] = val.y;
  dq[base + d + 2u] = val.z;
  dq[base + d + 3u] = val.w;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  prm = p;
  // Loop bounds come from p and wg alone (uniform), not from the private copies.
  let g = p.Hq / p.Hkv;
  let n_rows = p.Tq * g;
  let blocks = (n_rows + BQ - 1u) / BQ;
  let item = wg.x + wg.y * GRID_X;
  if (item >= p.B * p.Hkv * blocks) { return; }
  let blk = item % blocks;
  G = g;
  rows = n_rows;
  hk = (item / blocks) % p.Hkv;
  b = item / (blocks * p.Hkv);
  kv_stride = prm.Hkv * prm.D;
  kv_base = b * prm.S * kv_stride + hk * prm.D;

  let r = t / 4u;
  let qd = t % 4u;
  let row = blk * BQ + r;
  let row_ok = row < rows;
  let R = min(row, rows - 1u);
  let base = row_base(R);
  own(0u, base, qd, row_ok, false);
  own(1u, base, qd, row_ok, false);
  own(2u, base, qd, row_ok, false);
  own(3u, base, qd, row_ok, false);
  own(4u, base, qd, row_ok, false);
  own(5u, base, qd, row_ok, false);
  own(6u, base, qd, row_ok, false);
  own(7u, base, qd, row_ok, false);

  // Keys visible to the thread's row, and to the block's last row (the loop bound, uniform).
  let last = prm.q_start + R / G;
  let i_max = (min(blk * BQ + BQ, n_rows) - 1u) / g;
  let end = min(p.kv_len, min(p.S, p.q_start + i_max + 1u));
  // One pass with an online softmax: m = running max; over the visible keys, with e = exp(s - m),
  // l = Σ e, a = Σ e dP, acc = Σ e dP k, acc2 = Σ e k (rescaled as m grows). Then P = e / l,
  // delta = a / l and dq = scale · Σ P (dP - delta) k = scale · (acc - delta · acc2) / l.
  var m = NEG_INF;
  var l = 0.0;
  var a = 0.0;
  for (var j0 = 0u; j0 < end; j0 += BK) {
    load_tiles(t, j0, end);
    block_scores(r, qd, j0, last, row_ok);
    let cm = max(max(max(s[0], s[1]), max(s[2], s[3])), max(max(s[4], s[5]), max(s[6], s[7])));
    let m_new = max(m, cm);
    if (m_new > NEG_INF) {
      let corr = exp(m - m_new);
      scale_accs(corr);
      let e0 = add_key(0u, m_new, qd);
      let e1 = add_key(1u, m_new, qd);
      let e2 = add_key(2u, m_new, qd);
      let e3 = add_key(3u, m_new, qd);
      let e4 = add_key(4u, m_new, qd);
      let e5 = add_key(5u, m_new, qd);
      let e6 = add_key(6u, m_new, qd);
      let e7 = add_key(7u, m_new, qd);
      l = l * corr + ((e0 + e1) + (e2 + e3)) + ((e4 + e5) + (e6 + e7));
      a = a * corr + ((e0 * dp[0] + e1 * dp[1]) + (e2 * dp[2] + e3 * dp[3])) +
        ((e4 * dp[4] + e5 * dp[5]) + (e6 * dp[6] + e7 * dp[7]));
      m = m_new;
    }
    workgroupBarrier();
  }
  var lse = NEG_INF;
  var delta = 0.0;
  var f = 0.0; // a row that sees no key gets dq = 0
  if (l > 0.0) {
    lse = m + log(l);
    delta = a / l;
    f = prm.scale / l;
  }
  if (!row_ok) { return; }
  store_dq(0u, base, qd, delta, f);
  store_dq(1u, base, qd, delta, f);
  store_dq(2u, base, qd, delta, f);
  store_dq(3u, base, qd, delta, f);
  store_dq(4u, base, qd, delta, f);
  store_dq(5u, base, qd, delta, f);
  store_dq(6u, base, qd, delta, f);
  store_dq(7u, base, qd, delta, f);
  if (qd == 0u) {
    let ri = row_index(R);
    stats[ri * 2u] = lse;
    stats[ri * 2u + 1u] = delta;
  }
}

// ---- dkv: dk and dv ----

@group(0) @binding(5) var<storage, read> stats_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
@group(0) @binding(8) var<uniform> p8: Params;

// Stages vec4 e (of 256) of the q and dO tiles of the row block at r0 (zeros past D or rows).
fn load_qo(e: u32, r0: u32) {
  let R = r0 + e / DV;
  let d = 4u * (e % DV);
  stage(e, row_base(min(R, rows - 1u)) + d, R < rows && d < prm.D, false);
}

// For row c of the block, with q·k `qk` and dO·v `dov`: dk += dS · q, dv += P · dO (nothing where
// the row does not see slot j).
fn add_dkv(qk: f32, dov: f32, c: u32, qd: u32, r0: u32, j: u32, slot_ok: bool) {
  let R = r0 + c;
  let st = rstat[c];
  let ok = slot_ok && R < rows && j <= prm.q_start + R / G && st.x > NEG_INF;
  let pc = select(0.0, exp(qk - st.x), ok);
  let ds = pc * (dov - st.y) * prm.scale;
  add_ta(c, ds, qd);
  add_tb(c, pc, qd);
}

fn store_dkv(jj: u32, base: u32, qd: u32) {
  let d = 4u * (qd + 4u * jj);
  if (d >= prm.D) { return; }
  dk[base + d] = acc[jj].x;
  dk[base + d + 1u] = acc[jj].y;
  dk[base + d + 2u] = acc[jj].z;
  dk[base + d + 3u] = acc[jj].w;
  dv[base + d] = acc2[jj].x;
  dv[base + d + 1u] = acc2[jj].y;
  dv[base + d + 2u] = acc2[jj].z;
  dv[base + d + 3u] = acc2[jj].w;
}

@compute @workgroup_size(64)
fn dkv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  prm = p8;
  let g = p8.Hq / p8.Hkv;
  let n_rows = p8.Tq * g;
  let blocks = (p8.S + BQ - 1u) / BQ;
  let item = wg.x + wg.y * GRID_X;
  if (item >= p8.B * p8.Hkv * blocks) { return; }
  let blk = item % blocks;
  G = g;
  rows = n_rows;
  hk = (item / blocks) % p8.Hkv;
  b = item / (blocks * p8.Hkv);
  kv_stride = p8.Hkv * p8.D;
  kv_base = b * p8.S * kv_stride + hk * p8.D;

  let r = t / 4u;
  let qd = t % 4u;
  let j = blk * BQ + r;
  let slot_ok = key_ok(j);
  let base = kv_base + min(j, p8.S - 1u) * kv_stride;
  own(0u, base, qd, slot_ok, true);
  own(1u, base, qd, slot_ok, true);
  own(2u, base, qd, slot_ok, true);
  own(3u, base, qd, slot_ok, true);
  own(4u, base, qd, slot_ok, true);
  own(5u, base, qd, slot_ok, true);
  own(6u, base, qd, slot_ok, true);
  own(7u, base, qd, slot_ok, true);

  // Rows i >= (the block's first slot) - q_start see some slot of the block (causality).
  let j_first = blk * BQ;
  let i0 = select(0u, j_first - p8.q_start, j_first > p8.q_start);
  var r_begin = n_rows;
  if (j_first < min(p8.kv_len, p8.S) && i0 < p8.Tq) { r_begin = i0 * g; }
  for (var r0 = r_begin; r0 < n_rows; r0 += BK) {
    load_qo(t, r0);
    load_qo(t + 64u, r0);
    load_qo(t + 128u, r0);
    load_qo(t + 192u, r0);
    if (t < BK) {
      var st = vec2f(NEG_INF, 0.0);
      if (r0 + t < rows) {
        let ri = row_index(r0 + t);
        st = vec2f(stats_in[ri * 2u], stats_in[ri * 2u + 1u]);
      }
      rstat[t] = st;
    }
    workgroupBarrier();
    block_dots(r, qd);
    let s_lo = sum_ps(r, 0u);
    let s_hi = sum_ps(r, 1u);
    let d_lo = sum_pd(r, 0u);
    let d_hi = sum_pd(r, 1u);
    add_dkv(s_lo.x, d_lo.x, 0u, qd, r0, j, slot_ok);
    add_dkv(s_lo.y, d_lo.y, 1u, qd, r0, j, slot_ok);
    add_dkv(s_lo.z, d_lo.z, 2u, qd, r0, j, slot_ok);
    add_dkv(s_lo.w, d_lo.w, 3u, qd, r0, j, slot_ok);
    add_dkv(s_hi.x, d_hi.x, 4u, qd, r0, j, slot_ok);
    add_dkv(s_hi.y, d_hi.y, 5u, qd, r0, j, slot_ok);
    add_dkv(s_hi.z, d_hi.z, 6u, qd, r0, j, slot_ok);
    add_dkv(s_hi.w, d_hi.w, 7u, qd, r0, j, slot_ok);
    workgroupBarrier();
  }
  if (j >= p8.S) { return; }
  store_dkv(0u, base, qd);
  store_dkv(1u, base, qd);
  store_dkv(2u, base, qd);
  store_dkv(3u, base, qd);
  store_dkv(4u, base, qd);
  store_dkv(5u, base, qd);
  store_dkv(6u, base, qd);
  store_dkv(7u, base, qd);
}
