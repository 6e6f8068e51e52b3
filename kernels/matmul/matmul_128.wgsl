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
// after it, so there is one barrier per K tile.
// Shared stores: each shared vec4 (4 rows of one k) is written whole by one thread. WGSL lets a
// store to one component of a vector access the whole vector (gpuweb PR #3832; Metal and D3D may
// read-modify-write it), so threads writing different components of one shared vec4 would race.
// Global loads, for each operand tile (128 rows x 8 k = 256 shared vec4s):
// - scalar reads (no XV / WV): each thread reads the 4 rows of its vec4 at one k as 4 scalars;
//   8 consecutive threads take the 8 k of the same 4 rows (consecutive addresses), or,
//   transposed, 32 consecutive threads take the 128 rows of one k.
// - vec4 reads (XV / WV), transposed: each thread reads its vec4 as one vec4 of 4 consecutive
//   rows of one k.
// - vec4 reads, not transposed: a vec4 of global memory is 4 consecutive k of one row, so threads
//   0..63 (A) and 64..127 (B) each read a 4x4 block (4 rows x 4 k) as 4 vec4s and store its
//   transpose as 4 whole shared vec4s; the other threads read nothing of that operand.
// The vec4 reads need the element offsets of every vec4 to be multiples of 4 (the launcher
// checks: K, or M / N when transposed, ldx / ldw and x_col / w_col multiples of 4); _dispatch.ts
// then also rebinds that operand as array<vec4f> (array<vec4<f16>> for f16 w) by swapping the
// x4 / w4 read helpers below. Each shared tile holds the same values whichever reads fill it.
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
var<private> pa: vec4f; // the thread's prefetched shared vec4 of the next A tile
var<private> pb: vec4f; // ... and of the next B tile
// Vec4 reads without a transpose: the 4x4 block of the next A (threads 0..63) or B (64..127)
// tile, pq[j] = 4 consecutive k of row j of the block (16 registers where the old vec4 reads
// held 4; the effect on a GPU's occupancy is not yet measured).
var<private> pq: array<vec4f, 4>;

// Row group (x: rows 4x..4x+3) and depth (y) within the tile of the thread's shared vec4
// (0..255) of an operand tile: 8 consecutive threads take the 8 k of one row group, or, when
// the operand is transposed, 32 consecutive threads the 32 row groups of one k.
fn slot(li: u32, transposed: bool) -> vec2u {
  if (transposed) { return vec2u(li % 32u, li / 32u); }
  return vec2u(li / BK, li % BK);
}

// Fetches row j (0..3) of the thread's vec4 of each tile at depth k0 into pa[j], pb[j] (scalar
// reads). Skips the operand read as vec4s (XV / WV).
fn fetch(j: u32, li: u32, k0: u32, row0: u32, col0: u32) {
  if (!XV) { fetch_a(j, li, k0, row0); }
  if (!WV) { fetch_b(j, li, k0, col0); }
}

fn fetch_a(j: u32, li: u32, k0: u32, row0: u32) {
  let s = slot(li, X_T);
  let r = row0 + 4u * s.x + j;
  let k = k0 + s.y;
  var a = 0.0;
  if (r < p.M && k < p.K) {
    if (X_T) {
      a = x1(k * p.ldx + p.x_col + r);
    } else {
      a = x1(r * p.ldx + p.x_col + k);
    }
  }
  pa[j] = a;
}

fn fetch_b(j: u32, li: u32, k0: u32, col0: u32) {
  let s = slot(li, W_T);
  let n = col0 + 4u * s.x + j;
  let k = k0 + s.y;
  var b = 0.0;
  if (n < p.N && k < p.K) {
    if (W_T) {
      b = w1(k * p.ldw + p.w_col + n);
    } else {
      b = w1(n * p.ldw + p.w_col + k);
    }
  }
  pb[j] = b;
}

// The global reads. _dispatch.ts swaps x4 (w4) for `return x[i / 4u];` and x1 (w1) for a
// component of it when it binds x (w) as array<vec4f>.
fn x1(i: u32) -> f32 { return x[i]; }
fn x4(i: u32) -> vec4f { return vec4f(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }
fn w1(i: u32) -> f32 { return w[i]; }
fn w4(i: u32) -> vec4f { return vec4f(w[i], w[i + 1u], w[i + 2u], w[i + 3u]); }

// A vec4 read of A (XV) at row r and depth k: A[r, k..k+3], or, with X_T, A[r..r+3, k]. Zero
// past M or K (whole vec4s: K, or M with X_T, is a multiple of 4).
fn a4(r: u32, k: u32) -> vec4f {
  if (r >= p.M || k >= p.K) { return vec4f(); }
  if (X_T) { return x4(k * p.ldx + p.x_col + r); }
  return x4(r * p.ldx + p.x_col + k);
}

// A vec4 read of B (WV) at row n and depth k: B[n, k..k+3], or, with W_T, B[n..n+3, k].
fn b4(n: u32, k: u32) -> vec4f {
  if (n >= p.N || k >= p.K) { return vec4f(); }
  if (W_T) { return w4(k * p.ldw + p.w_col + n); }
  return w4(n * p.ldw + p.w_col + k);
}

// The 4x4 block of loader thread t (0..63) of a tile read as vec4s without a transpose: rows
// 4 (t / 2) .. + 3 and k 4 (t % 2) .. + 3 of the A (is_a) or B tile at rows r0, depth k0.
fn fetch_block(t: u32, is_a: bool, k0: u32, r0: u32) {
  let r = r0 + 4u * (t / 2u);
  let k = k0 + 4u * (t % 2u);
  if (is_a) {
    pq[0] = a4(r, k);
    pq[1] = a4(r + 1u, k);
    pq[2] = a4(r + 2u, k);
    pq[3] = a4(r + 3u, k);
  } else {
    pq[0] = b4(r, k);
    pq[1] = b4(r + 1u, k);
    pq[2] = b4(r + 2u, k);
    pq[3] = b4(r + 3u, k);
  }
}

// Stores the transpose of loader thread t's block into shared buffer `base` of As (is_a) or
// Bs: 4 whole vec4s, one per k.
fn stash_block(t: u32, is_a: bool, base: u32) {
  let i = base + (t % 2u) * 4u * 32u + t / 2u;
  put(is_a, i, vec4f(pq[0].x, pq[1].x, pq[2].x, pq[3].x));
  put(is_a, i + 32u, vec4f(pq[0].y, pq[1].y, pq[2].y, pq[3].y));
  put(is_a, i + 64u, vec4f(pq[0].z, pq[1].z, pq[2].z, pq[3].z));
  put(is_a, i + 96u, vec4f(pq[0].w, pq[1].w, pq[2].w, pq[3].w));
}

fn put(is_a: bool, i: u32, v: vec4f) {
  if (is_a) { As[i] = v; } else { Bs[i] = v; }
}

fn fetch4(li: u32, k0: u32, row0: u32, col0: u32) {
  fetch(0u, li, k0, row0, col0);
  fetch(1u, li, k0, row0, col0);
  fetch(2u, li, k0, row0, col0);
  fetch(3u, li, k0, row0, col0);
  if (XV) {
    if (X_T) {
      let s = slot(li, true);
      pa = a4(row0 + 4u * s.x, k0 + s.y);
    } else if (li < 64u) {
      fetch_block(li, true, k0, row0);
    }
  }
  if (WV) {
    if (W_T) {
      let s = slot(li, true);
      pb = b4(col0 + 4u * s.x, k0 + s.y);
    } else if (li >= 64u && li < 128u) {
      fetch_block(li - 64u, false, k0, col0);
    }
  }
}

// Stores the prefetched vec4s into shared buffer `base` ([k][row / 4] layout), each whole.
fn stash4(li: u32, base: u32) {
  if (!XV || X_T) {
    let s = slot(li, X_T);
    As[base + s.y * 32u + s.x] = pa;
  } else if (li < 64u) {
    stash_block(li, true, base);
  }
  if (!WV || W_T) {
    let s = slot(li, W_T);
    Bs[base + s.y * 32u + s.x] = pb;
  } else if (li >= 64u && li < 128u) {
    stash_block(li - 64u, false, base);
  }
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
