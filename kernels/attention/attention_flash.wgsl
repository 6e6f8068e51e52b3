// attention_flash: the product of attention.wgsl (same bindings, Params and result), tiled for
// prefill: one workgroup of 64 threads per (b, kv head, block of 16 rows), a row being a pair
// (query i, query head h) of the kv head's group, R = i * G + g with G = Hq / Hkv, h = hk * G + g,
// so the G heads that share a kv head share its key/value tiles. The keys go by in blocks of 8:
// the block's K and V ([8][D], D <= 128, zero-padded to 128) are loaded once into shared memory
// for all 16 rows; thread t owns row t / 4 and the quarter t % 4 of d (vec4 indices qd + 4jj,
// jj < 8), with its query slice and its 32 output accumulators in registers. Per block: the 8
// partial dots over its quarter -> shared as 2 whole vec4s of its own (no invocation writes a
// component of a vec4 that another one writes: WGSL lets a component store rewrite the whole
// vector), each thread sums the 4 quarters of its row's 8 scores (the 4 threads of a row do this
// identically), then the online softmax (running max m, sum l) and acc += p · V. Queries see
// keys j <= q_start + i, j < kv_len, mask[b, j] = 1; a row with no visible key gets o = 0.
// Needs D % 4 == 0 and D <= 128 (the launcher falls back otherwise).
// The only loop is the one over key blocks (every inner step is an inlined call), for Mesa's
// 65,535-iteration loop limit (see kernels/matmul/matmul.wgsl): S <= 524,280.
// k and v: f32, or a packed-f16 KV cache (read through _kv_load.wgsl, appended by attention.ts).
// Reads q, k, v, mask; writes o. Tolerance vs f64 reference: rel 1e-5 (f32; f16 k and v: against
// the reference over the same f16 values).
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

const BR = 16u; // rows per workgroup
const BC = 8u; // keys per block
const DV = 32u; // vec4s of a padded head (128 / 4)
// Vec4s jj of its quarter of d that a thread uses: ceil(D / 16), set by the launcher (default 8,
// the whole padded head). The slices jj >= DJ hold zeros in qr, Ks and Vs (d >= D), add +0 to a
// dot and are never stored, so skipping them changes no result; at a tiny head (D = 4, DJ = 1)
// it cuts the dots and fmas of a key block 8-fold.
override DJ: u32 = 8u;
const NEG_INF = -3.0e38;

var<workgroup> Ks: array<vec4f, 256>; // [BC][DV]
var<workgroup> Vs: array<vec4f, 256>; // [BC][DV]
// Partial dots [BR][4 quarters of d][2]: vec4 h of quarter qd of row r, part[r * BC + 2 qd + h],
// holds the dots of keys 4h .. 4h + 3 over that quarter, written whole by thread 4r + qd.
var<workgroup> part: array<vec4f, 128>;

var<private> qr: array<vec4f, 8>; // the thread's slice of its row's query (pre-scaled)
var<private> acc: array<vec4f, 8>; // ... and of its output
var<private> s: array<f32, 8>; // the row's scores of the current block

// Shared across the workgroup (uniform): batch row, kv head, first row, the block's last query.
var<private> b: u32;
var<private> hk: u32;
var<private> kv_base: u32;
var<private> kv_stride: u32;

// Loads vec4 e (of 256) of the K and V tiles of the block at key j0 (zeros past D or past end).
fn load(e: u32, j0: u32, end: u32) {
  let c = e / DV;
  let dv = e % DV;
  let j = j0 + c;
  var kv = vec4f(0.0);
  var vv = vec4f(0.0);
  if (j < end && 4u * dv < p.D) {
    let base = kv_base + j * kv_stride + 4u * dv;
    kv = load_k4(base);
    vv = load_v4(base);
  }
  Ks[e] = kv;
  Vs[e] = vv;
}

// The thread's partial dot (its quarter qd of d) of its query with key c of the tile.
fn dot_part(c: u32, qd: u32) -> f32 {
  let o = c * DV + qd;
  // The terms in order, as the sum dot(qr[0], ..) + dot(qr[1], ..) + .. + dot(qr[7], ..).
  var sum = dot(qr[0], Ks[o]);
  if (DJ > 1u) { sum += dot(qr[1], Ks[o + 4u]); }
  if (DJ > 2u) { sum += dot(qr[2], Ks[o + 8u]); }
  if (DJ > 3u) { sum += dot(qr[3], Ks[o + 12u]); }
  if (DJ > 4u) { sum += dot(qr[4], Ks[o + 16u]); }
  if (DJ > 5u) { sum += dot(qr[5], Ks[o + 20u]); }
  if (DJ > 6u) { sum += dot(qr[6], Ks[o + 24u]); }
  if (DJ > 7u) { sum += dot(qr[7], Ks[o + 28u]); }
  return sum;
}

// Score of key c: its dot `sum` (the 4 quarters summed), or NEG_INF when the key is not visible.
fn score(sum: f32, c: u32, j0: u32, last: u32, row_ok: bool) -> f32 {
  let j = j0 + c;
  let ok = row_ok && j <= last && j < p.kv_len && mask[b * p.S + min(j, p.S - 1u)] != 0u;
  return select(NEG_INF, sum, ok);
}

// acc += pc · V[c] over the thread's quarter of d.
fn add_v(c: u32, pc: f32, qd: u32) {
  let o = c * DV + qd;
  acc[0] = fma(vec4f(pc), Vs[o], acc[0]);
  if (DJ > 1u) { acc[1] = fma(vec4f(pc), Vs[o + 4u], acc[1]); }
  if (DJ > 2u) { acc[2] = fma(vec4f(pc), Vs[o + 8u], acc[2]); }
  if (DJ > 3u) { acc[3] = fma(vec4f(pc), Vs[o + 12u], acc[3]); }
  if (DJ > 4u) { acc[4] = fma(vec4f(pc), Vs[o + 16u], acc[4]); }
  if (DJ > 5u) { acc[5] = fma(vec4f(pc), Vs[o + 20u], acc[5]); }
  if (DJ > 6u) { acc[6] = fma(vec4f(pc), Vs[o + 24u], acc[6]); }
  if (DJ > 7u) { acc[7] = fma(vec4f(pc), Vs[o + 28u], acc[7]); }
}

fn scale_acc(f: f32) {
  acc[0] *= f;
  if (DJ > 1u) { acc[1] *= f; }
  if (DJ > 2u) { acc[2] *= f; }
  if (DJ > 3u) { acc[3] *= f; }
  if (DJ > 4u) { acc[4] *= f; }
  if (DJ > 5u) { acc[5] *= f; }
  if (DJ > 6u) { acc[6] *= f; }
  if (DJ > 7u) { acc[7] *= f; }
}

fn load_q(jj: u32, q_base: u32, qd: u32, row_ok: bool) {
  let d = 4u * (qd + 4u * jj);
  var val = vec4f(0.0);
  if (row_ok && d < p.D) {
    val = vec4f(q[q_base + d], q[q_base + d + 1u], q[q_base + d + 2u], q[q_base + d + 3u]);
  }
  qr[jj] = val * p.scale;
}

fn store_o(jj: u32, q_base: u32, qd: u32, inv: f32) {
  let d = 4u * (qd + 4u * jj);
  if (d >= p.D) { return; }
  let val = acc[jj] * inv;
  o[q_base + d] = val.x;
  o[q_base + d + 1u] = val.y;
  o[q_base + d + 2u] = val.z;
  o[q_base + d + 3u] = val.w;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let G = p.Hq / p.Hkv;
  let rows = p.Tq * G;
  let blocks = (rows + BR - 1u) / BR;
  let item = wg.x + wg.y * GRID_X;
  if (item >= p.B * p.Hkv * blocks) { return; }
  let blk = item % blocks;
  hk = (item / blocks) % p.Hkv;
  b = item / (blocks * p.Hkv);
  kv_stride = p.Hkv * p.D;
  kv_base = b * p.S * kv_stride + hk * p.D;

  let r = t / 4u;
  let qd = t % 4u;
  let row = blk * BR + r;
  let row_ok = row < rows;
  let i = min(row, rows - 1u) / G;
  let h = hk * G + min(row, rows - 1u) % G;
  let q_base = ((b * p.Tq + i) * p.Hq + h) * p.D;
  load_q(0u, q_base, qd, row_ok);
  load_q(1u, q_base, qd, row_ok);
  load_q(2u, q_base, qd, row_ok);
  load_q(3u, q_base, qd, row_ok);
  load_q(4u, q_base, qd, row_ok);
  load_q(5u, q_base, qd, row_ok);
  load_q(6u, q_base, qd, row_ok);
  load_q(7u, q_base, qd, row_ok);

  // Keys visible to the thread's row, and to the block's last row (the loop bound, uniform).
  let last = p.q_start + i;
  let i_max = (min(blk * BR + BR, rows) - 1u) / G;
  let end = min(p.kv_len, min(p.S, p.q_start + i_max + 1u));
  var m = NEG_INF;
  var l = 0.0;
  for (var j0 = 0u; j0 < end; j0 += BC) {
    load(t, j0, end);
    load(t + 64u, j0, end);
    load(t + 128u, j0, end);
    load(t + 192u, j0, end);
    workgroupBarrier();
    let pw = r * BC + 2u * qd;
    part[pw] = vec4f(dot_part(0u, qd), dot_part(1u, qd), dot_part(2u, qd), dot_part(3u, qd));
    part[pw + 1u] = vec4f(dot_part(4u, qd), dot_part(5u, qd), dot_part(6u, qd), dot_part(7u, qd));
    workgroupBarrier();
    // The row's 8 dots: quarters 0 + 1 + 2 + 3 in that order, keys 0 .. 3 (lo) and 4 .. 7 (hi).
    let pr = r * BC;
    let lo = part[pr] + part[pr + 2u] + part[pr + 4u] + part[pr + 6u];
    let hi = part[pr + 1u] + part[pr + 3u] + part[pr + 5u] + part[pr + 7u];
    s[0] = score(lo.x, 0u, j0, last, row_ok);
    s[1] = score(lo.y, 1u, j0, last, row_ok);
    s[2] = score(lo.z, 2u, j0, last, row_ok);
    s[3] = score(lo.w, 3u, j0, last, row_ok);
    s[4] = score(hi.x, 4u, j0, last, row_ok);
    s[5] = score(hi.y, 5u, j0, last, row_ok);
    s[6] = score(hi.z, 6u, j0, last, row_ok);
    s[7] = score(hi.w, 7u, j0, last, row_ok);
    let cm = max(max(max(s[0], s[1]), max(s[2], s[3])), max(max(s[4], s[5]), max(s[6], s[7])));
    let m_new = max(m, cm);
    if (m_new > NEG_INF) {
      let corr = exp(m - m_new);
      scale_acc(corr);
      let p0 = exp(s[0] - m_new);
      let p1 = exp(s[1] - m_new);
      let p2 = exp(s[2] - m_new);
      let p3 = exp(s[3] - m_new);
      let p4 = exp(s[4] - m_new);
      let p5 = exp(s[5] - m_new);
      let p6 = exp(s[6] - m_new);
      let p7 = exp(s[7] - m_new);
      l = l * corr + ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7));
      add_v(0u, p0, qd);
      add_v(1u, p1, qd);
      add_v(2u, p2, qd);
      add_v(3u, p3, qd);
      add_v(4u, p4, qd);
      add_v(5u, p5, qd);
      add_v(6u, p6, qd);
      add_v(7u, p7, qd);
      m = m_new;
    }
    workgroupBarrier();
  }
  if (!row_ok) { return; }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  store_o(0u, q_base, qd, inv);
  store_o(1u, q_base, qd, inv);
  store_o(2u, q_base, qd, inv);
  store_o(3u, q_base, qd, inv);
  store_o(4u, q_base, qd, inv);
  store_o(5u, q_base, qd, inv);
  store_o(6u, q_base, qd, inv);
  store_o(7u, q_base, qd, inv);
}
