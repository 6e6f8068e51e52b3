// matmul_128: the same product as matmul.wgsl, with the same bindings, Params and X_T / W_T
// variants (f16 w through kernels/_f16.ts), for large M and N (prefill, training GEMMs):
//   y[m, y_col + n] = (accumulate ? y[m, y_col + n] : 0) + alpha * sum_k A[m, k] * B[n, k]
//   A[m, k] = x[m * ldx + x_col + k]   (X_T: x[k * ldx + x_col + m])
//   B[n, k] = w[n * ldw + w_col + k]   (W_T: w[k * ldw + w_col + n])
// Tiles of 128x128 outputs, 8 deep in K; 256 threads (16x16), each owning 8x8 outputs: rows
// 4ty..4ty+3 and 64+4ty..64+4ty+3, columns 4tx..4tx+3 and 64+4tx..64+4tx+3, so every k step
// reads 2 vec4 of A and 2 vec4 of B from shared memory for 64 FMAs (matmul.wgsl: 8 scalar
// reads for 16). The shared tiles are double-buffered: the next K tile is fetched from global
// memory into registers before the current one is multiplied and stored into the other buffer
// after it, so there is one barrier per K tile. Global loads: with XV (WV) each thread reads its
// 4 elements of the A (B) tile as one vec4 of 4 consecutive k of one row (transposed: 4 consecutive
// rows of one k), which needs the element offsets of every vec4 to be multiples of 4 (the
// launcher checks: K, or M / N when transposed, ldx / ldw and x_col / w_col multiples of 4);
// _dispatch.ts then also rebinds that operand as array<vec4f> (array<vec4<f16>> for f16 w) by
// swapping the x4 / w4 read helpers below. Without XV (WV) the reads are scalar and coalesced:
// consecutive threads read consecutive addresses, along k, or along rows when transposed.
// Any M, N, K (bounds-checked loads and stores). Shared memory: 16 KiB (WebGPU's default limit).
// Mesa's llvmpipe/lavapipe stops a shader after 65,535 loop iterations summed over nested loops
// (see matmul.wgsl): the only loop is the one over K, every inner step is an inlined call, so
// K <= 524,280 (8 x 65,535).
// Reads x, w (and y when accumulating); writes y. Tolerance vs f64 reference: rel 1e-5 (f32).
struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, y_col: u32, accumulate: u32, alpha: f32,
  ldw: u32, x_col: u32, w_col: u32,
  k_chunk: u32, // matmul.wgsl's split-K chunk: always 0 (the whole of K) for this kernel
}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override X_T: bool = false;
override W_T: bool = false;
override XV: bool = false; // A tile read as vec4s (aligned: see the header)
override WV: bool = false; // B tile read as vec4s

const BM = 128u;
const BN = 128u;
const BK = 8u;
const HALF = 256u; // vec4s in one buffer of a tile: BK * 128 / 4
var<workgroup> As: array<vec4f, 512>; // [2 buffers][BK][BM / 4]
var<workgroup> Bs: array<vec4f, 512>; // [2 buffers][BK][BN / 4]

var<private> acc: array<vec4f, 16>; // acc[2 * i + h]: row i of the thread's 8, column half h
var<private> pa: vec4f; // the thread's 4 prefetched elements of the next A tile
var<private> pb: vec4f; // ... and of the next B tile

// Row (x) and depth (y) within the tile of the thread's element e (0..1023) of an operand tile:
// consecutive threads take consecutive k, or consecutive rows when the operand is transposed.
fn slot(e: u32, transposed: bool) -> vec2u {
  if (transposed) { return vec2u(e % 128u, e / 128u); }
  return vec2u(e / BK, e % BK);
}

// Fetches element j (0..3) of the thread's share of the tiles at depth k0 into pa[j], pb[j].
// Skips the operand read as vec4s (XV / WV).
fn fetch(j: u32, li: u32, k0: u32, row0: u32, col0: u32) {
  let e = li + 256u * j;
  if (!XV) { fetch_a(e, k0, row0, j); }
  if (!WV) { fetch_b(e, k0, col0, j); }
}

fn fetch_a(e: u32, k0: u32, row0: u32, j: u32) {
  let sa = slot(e, X_T);
  let ka = k0 + sa.y;
  var a = 0.0;
  if (row0 + sa.x < p.M && ka < p.K) {
    if (X_T) {
      a = x1(ka * p.ldx + p.x_col + row0 + sa.x);
    } else {
      a = x1((row0 + sa.x) * p.ldx + p.x_col + ka);
    }
  }
  pa[j] = a;
}

fn fetch_b(e: u32, k0: u32, col0: u32, j: u32) {
  let sb = slot(e, W_T);
  let kb = k0 + sb.y;
  var b = 0.0;
  if (col0 + sb.x < p.N && kb < p.K) {
    if (W_T) {
      b = w1(kb * p.ldw + p.w_col + col0 + sb.x);
    } else {
      b = w1((col0 + sb.x) * p.ldw + p.w_col + kb);
    }
  }
  pb[j] = b;
}

// Stores the prefetched element j into shared buffer `base` ([k][row] layout).
fn stash(j: u32, li: u32, base: u32) {
  let e = li + 256u * j;
  if (!XV) {
    let sa = slot(e, X_T);
    As[base + sa.y * 32u + sa.x / 4u][sa.x % 4u] = pa[j];
  }
  if (!WV) {
    let sb = slot(e, W_T);
    Bs[base + sb.y * 32u + sb.x / 4u][sb.x % 4u] = pb[j];
  }
}

// The global reads. _dispatch.ts swaps x4 (w4) for `return x[i / 4u];` and x1 (w1) for a
// component of it when it binds x (w) as array<vec4f>.
fn x1(i: u32) -> f32 { return x[i]; }
fn x4(i: u32) -> vec4f { return vec4f(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }
fn w1(i: u32) -> f32 { return w[i]; }
fn w4(i: u32) -> vec4f { return vec4f(w[i], w[i + 1u], w[i + 2u], w[i + 3u]); }

// Row (x) and depth (y) within the tile of the first of the thread's 4 elements in the vec4
// reads: 4 consecutive k of row li / 2, or, transposed, 4 consecutive rows of depth li / 32.
fn slot4(li: u32, transposed: bool) -> vec2u {
  if (transposed) { return vec2u((li % 32u) * 4u, li / 32u); }
  return vec2u(li / 2u, (li % 2u) * 4u);
}

// The thread's vec4 of the A tile at depth k0 (XV; zero past M or K, which are whole vec4s).
fn fetch_a4(li: u32, k0: u32, row0: u32) -> vec4f {
  let s = slot4(li, X_T);
  let r = row0 + s.x;
  let k = k0 + s.y;
  if (r >= p.M || k >= p.K) { return vec4f(); }
  if (X_T) { return x4(k * p.ldx + p.x_col + r); }
  return x4(r * p.ldx + p.x_col + k);
}

// The thread's vec4 of the B tile at depth k0 (WV).
fn fetch_b4(li: u32, k0: u32, col0: u32) -> vec4f {
  let s = slot4(li, W_T);
  let n = col0 + s.x;
  let k = k0 + s.y;
  if (n >= p.N || k >= p.K) { return vec4f(); }
  if (W_T) { return w4(k * p.ldw + p.w_col + n); }
  return w4(n * p.ldw + p.w_col + k);
}

// Stores a vec4 read (fetch_a4 / fetch_b4) into shared buffer `o` (As or Bs from `base`): whole
// when it runs along rows (transposed), else one component into each of 4 k rows.
fn stash_vec(li: u32, transposed: bool, v: vec4f, is_a: bool, base: u32) {
  let s = slot4(li, transposed);
  let i = base + s.y * 32u + s.x / 4u;
  let c = s.x % 4u;
  if (is_a) {
    if (transposed) { As[i] = v; } else {
      As[i][c] = v.x;
      As[i + 32u][c] = v.y;
      As[i + 64u][c] = v.z;
      As[i + 96u][c] = v.w;
    }
  } else {
    if (transposed) { Bs[i] = v; } else {
      Bs[i][c] = v.x;
      Bs[i + 32u][c] = v.y;
      Bs[i + 64u][c] = v.z;
      Bs[i + 96u][c] = v.w;
    }
  }
}

fn fetch4(li: u32, k0: u32, row0: u32, col0: u32) {
  fetch(0u, li, k0, row0, col0);
  fetch(1u, li, k0, row0, col0);
  fetch(2u, li, k0, row0, col0);
  fetch(3u, li, k0, row0, col0);
  if (XV) { pa = fetch_a4(li, k0, row0); }
  if (WV) { pb = fetch_b4(li, k0, col0); }
}

fn stash4(li: u32, base: u32) {
  stash(0u, li, base);
  stash(1u, li, base);
  stash(2u, li, base);
  stash(3u, li, base);
  if (XV) { stash_vec(li, X_T, pa, true, base); }
  if (WV) { stash_vec(li, W_T, pb, false, base); }
}

// acc rows 4r..4r+3 of the thread's 8 (r = 0, 1) += a (4 rows) x [b0 | b1] (8 columns).
fn outer(r: u32, a: vec4f, b0: vec4f, b1: vec4f) {
  let i = 8u * r;
  acc[i] = fma(vec4f(a.x), b0, acc[i]);
  acc[i + 1u] = fma(vec4f(a.x), b1, acc[i + 1u]);
  acc[i + 2u] = fma(vec4f(a.y), b0, acc[i + 2u]);
  acc[i + 3u] = fma(vec4f(a.y), b1, acc[i + 3u]);
  acc[i + 4u] = fma(vec4f(a.z), b0, acc[i + 4u]);
  acc[i + 5u] = fma(vec4f(a.z), b1, acc[i + 5u]);
  acc[i + 6u] = fma(vec4f(a.w), b0, acc[i + 6u]);
  acc[i + 7u] = fma(vec4f(a.w), b1, acc[i + 7u]);
}

// One k step of the thread's 8x8 outputs from shared buffer `base`.
fn step(kk: u32, base: u32, tx: u32, ty: u32) {
  let o = base + kk * 32u;
  let b0 = Bs[o + tx];
  let b1 = Bs[o + tx + 16u];
  outer(0u, As[o + ty], b0, b1);
  outer(1u, As[o + ty + 16u], b0, b1);
}

fn step8(base: u32, tx: u32, ty: u32) {
  step(0u, base, tx, ty);
  step(1u, base, tx, ty);
  step(2u, base, tx, ty);
  step(3u, base, tx, ty);
  step(4u, base, tx, ty);
  step(5u, base, tx, ty);
  step(6u, base, tx, ty);
  step(7u, base, tx, ty);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  fetch4(li, 0u, row0, col0);
  stash4(li, 0u);
  workgroupBarrier();
  var base = 0u;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    let more = k0 + BK < p.K;
    if (more) { fetch4(li, k0 + BK, row0, col0); }
    step8(base, lid.x, lid.y);
    base = HALF - base;
    // The other buffer was last read before the previous barrier.
    if (more) { stash4(li, base); }
    workgroupBarrier();
  }
  let m0 = row0 + 4u * lid.y;
  let n0 = col0 + 4u * lid.x;
  store_row(m0, n0, 0u);
  store_row(m0 + 1u, n0, 2u);
  store_row(m0 + 2u, n0, 4u);
  store_row(m0 + 3u, n0, 6u);
  store_row(m0 + 64u, n0, 8u);
  store_row(m0 + 65u, n0, 10u);
  store_row(m0 + 66u, n0, 12u);
  store_row(m0 + 67u, n0, 14u);
}

// Stores the thread's 8 outputs of row m (acc[i], acc[i + 1]) at columns n0.. and n0 + 64...
fn store_row(m: u32, n0: u32, i: u32) {
  if (m >= p.M) { return; }
  store4(m, n0, acc[i]);
  store4(m, n0 + 64u, acc[i + 1u]);
}

fn store4(m: u32, n0: u32, v: vec4f) {
  let idx = m * p.ldy + p.y_col + n0;
  store1(idx, n0 < p.N, v.x);
  store1(idx + 1u, n0 + 1u < p.N, v.y);
  store1(idx + 2u, n0 + 2u < p.N, v.z);
  store1(idx + 3u, n0 + 3u < p.N, v.w);
}

fn store1(idx: u32, ok: bool, v: f32) {
  if (!ok) { return; }
  var out = p.alpha * v;
  if (p.accumulate != 0u) { out += y[idx]; }
  y[idx] = out;
}
