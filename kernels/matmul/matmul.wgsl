// matmul: y[m, y_col + n] = (accumulate ? y[m, y_col + n] : 0) + alpha * sum_k A[m, k] * B[n, k]
//   A[m, k] = x[m * ldx + x_col + k]   (X_T: x[k * ldx + x_col + m], i.e. x holds Aᵀ)
//   B[n, k] = w[n * ldw + w_col + k]   (W_T: w[k * ldw + w_col + n], i.e. w holds Bᵀ)
// The forward y = x · wᵀ uses neither transpose (w is PyTorch's [out, in], ldw = K); the
// backward of it uses W_T for dx = dy · w and X_T + W_T for dw = dyᵀ · x (matmul_backward.ts).
// Tiles of 64x64 outputs, 16 deep in K; 256 threads, each owning 4x4 outputs strided by 16.
// Global loads: with XV (WV) each thread reads its 4 elements of the A (B) tile as one vec4 (4
// consecutive k of one row, or, transposed, 4 consecutive rows of one k), when every such vec4 is
// aligned (the launcher checks, as for matmul_128.wgsl, and rebinds the operand as array<vec4f>
// by swapping the x4 / w4 helpers); else scalar, consecutive threads at consecutive addresses.
// Any M, N, K (bounds-checked loads and stores). Outputs with M and N >= 32 get matmul_128.wgsl
// (128x128 tiles, 8x8 per thread) instead: the launchers pick through _dispatch.ts.
// Split-K (k_chunk > 0, a multiple of BK; the launcher's first pass, matmul_split_k.wgsl sums):
// workgroup z sums k in [z * k_chunk, min(K, (z + 1) * k_chunk)) and writes its partial product
// at block z of y (offset z * M * ldy); with k_chunk = 0 (every other call) one z sums all of K.
// Reads x, w (and y when accumulating); writes y. Tolerance vs f64 reference: rel 1e-5 (f32).
struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, y_col: u32, accumulate: u32, alpha: f32,
  ldw: u32, x_col: u32, w_col: u32, k_chunk: u32,
}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override X_T: bool = false;
override W_T: bool = false;
override XV: bool = false; // A tile read as vec4s (aligned: see the header)
override WV: bool = false; // B tile read as vec4s

const BM = 64u;
const BN = 64u;
const BK = 16u;
var<workgroup> As: array<f32, 1024>; // [BK][BM]
var<workgroup> Bs: array<f32, 1024>; // [BK][BN]

// The loops over a tile's loads and its 16 k steps are written as calls (inlined: no loop), so
// the only loop is the one over K: Mesa's llvmpipe/lavapipe stops a shader after 65,535 loop
// iterations summed over nested loops (gallivm's loop limiter), which with inner loops cut off
// the sum at K ≈ 58,000 (the LM head's backward over a 151,936 vocabulary); now K ≤ 1,048,560.
var<private> acc: array<vec4f, 4>;

// Loads element e (of 1024) of the A and B tiles at depth k0 (skipping an operand read as vec4s).
fn load(e: u32, k0: u32, row0: u32, col0: u32) {
  if (!XV) { load_a(e, k0, row0); }
  if (!WV) { load_b(e, k0, col0); }
}

fn load_a(e: u32, k0: u32, row0: u32) {
  // Consecutive threads read consecutive addresses: along k, or along rows when transposed.
  var r = e / BK;
  var c = e % BK;
  if (X_T) { r = e % BM; c = e / BM; }
  let gk = k0 + c;
  var a = 0.0;
  if (row0 + r < p.M && gk < p.K) {
    if (X_T) {
      a = x1(gk * p.ldx + p.x_col + row0 + r);
    } else {
      a = x1((row0 + r) * p.ldx + p.x_col + gk);
    }
  }
  As[c * BM + r] = a;
}

fn load_b(e: u32, k0: u32, col0: u32) {
  var r = e / BK;
  var c = e % BK;
  if (W_T) { r = e % BN; c = e / BN; }
  let gk = k0 + c;
  var b = 0.0;
  if (col0 + r < p.N && gk < p.K) {
    if (W_T) {
      b = w1(gk * p.ldw + p.w_col + col0 + r);
    } else {
      b = w1((col0 + r) * p.ldw + p.w_col + gk);
    }
  }
  Bs[c * BN + r] = b;
}

// The global reads. _dispatch.ts swaps x4 (w4) for `return x[i / 4u];` and x1 (w1) for a
// component of it when it binds x (w) as array<vec4f>.
fn x1(i: u32) -> f32 { return x[i]; }
fn x4(i: u32) -> vec4f { return vec4f(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }
fn w1(i: u32) -> f32 { return w[i]; }
fn w4(i: u32) -> vec4f { return vec4f(w[i], w[i + 1u], w[i + 2u], w[i + 3u]); }

// Row (x) and depth (y) within a 64x16 tile of the first of the thread's 4 elements in the vec4
// reads: 4 consecutive k of row li / 4, or, transposed, 4 consecutive rows of depth li / 16.
fn slot4(li: u32, transposed: bool) -> vec2u {
  if (transposed) { return vec2u((li % 16u) * 4u, li / 16u); }
  return vec2u(li / 4u, (li % 4u) * 4u);
}

// The thread's vec4 of the A tile at depth k0 (XV) into As.
fn load_a4(li: u32, k0: u32, row0: u32) {
  let s = slot4(li, X_T);
  let r = row0 + s.x;
  let k = k0 + s.y;
  var v = vec4f();
  if (r < p.M && k < p.K) {
    if (X_T) { v = x4(k * p.ldx + p.x_col + r); } else { v = x4(r * p.ldx + p.x_col + k); }
  }
  if (X_T) {
    let i = s.y * BM + s.x;
    As[i] = v.x;
    As[i + 1u] = v.y;
    As[i + 2u] = v.z;
    As[i + 3u] = v.w;
  } else {
    let i = s.y * BM + s.x;
    As[i] = v.x;
    As[i + BM] = v.y;
    As[i + 2u * BM] = v.z;
    As[i + 3u * BM] = v.w;
  }
}

// The thread's vec4 of the B tile at depth k0 (WV) into Bs.
fn load_b4(li: u32, k0: u32, col0: u32) {
  let s = slot4(li, W_T);
  let n = col0 + s.x;
  let k = k0 + s.y;
  var v = vec4f();
  if (n < p.N && k < p.K) {
    if (W_T) { v = w4(k * p.ldw + p.w_col + n); } else { v = w4(n * p.ldw + p.w_col + k); }
  }
  if (W_T) {
    let i = s.y * BN + s.x;
    Bs[i] = v.x;
    Bs[i + 1u] = v.y;
    Bs[i + 2u] = v.z;
    Bs[i + 3u] = v.w;
  } else {
    let i = s.y * BN + s.x;
    Bs[i] = v.x;
    Bs[i + BN] = v.y;
    Bs[i + 2u * BN] = v.z;
    Bs[i + 3u * BN] = v.w;
  }
}

// One k step of the thread's 4x4 outputs.
fn step(kk: u32, lid: vec3u) {
  let bv = vec4f(Bs[kk * BN + lid.x], Bs[kk * BN + lid.x + 16u], Bs[kk * BN + lid.x + 32u],
                 Bs[kk * BN + lid.x + 48u]);
  acc[0] = fma(vec4f(As[kk * BM + lid.y]), bv, acc[0]);
  acc[1] = fma(vec4f(As[kk * BM + lid.y + 16u]), bv, acc[1]);
  acc[2] = fma(vec4f(As[kk * BM + lid.y + 32u]), bv, acc[2]);
  acc[3] = fma(vec4f(As[kk * BM + lid.y + 48u]), bv, acc[3]);
}

fn step4(kk: u32, lid: vec3u) {
  step(kk, lid);
  step(kk + 1u, lid);
  step(kk + 2u, lid);
  step(kk + 3u, lid);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  var k_lo = 0u;
  var k_hi = p.K;
  var y_off = 0u;
  if (p.k_chunk != 0u) {
    // A chunk is whole BK tiles: no tile crosses into the next chunk, and the loads' k < K
    // bound cuts the last one.
    k_lo = wg.z * p.k_chunk;
    k_hi = min(p.K, k_lo + p.k_chunk);
    y_off = wg.z * p.M * p.ldy;
  }
  for (var k0 = k_lo; k0 < k_hi; k0 += BK) {
    load(li, k0, row0, col0);
    load(li + 256u, k0, row0, col0);
    load(li + 512u, k0, row0, col0);
    load(li + 768u, k0, row0, col0);
    if (XV) { load_a4(li, k0, row0); }
    if (WV) { load_b4(li, k0, col0); }
    workgroupBarrier();
    step4(0u, lid);
    step4(4u, lid);
    step4(8u, lid);
    step4(12u, lid);
    workgroupBarrier();
  }
  store(y_off, row0 + lid.y, col0 + lid.x, acc[0]);
  store(y_off, row0 + lid.y + 16u, col0 + lid.x, acc[1]);
  store(y_off, row0 + lid.y + 32u, col0 + lid.x, acc[2]);
  store(y_off, row0 + lid.y + 48u, col0 + lid.x, acc[3]);
}

fn store(y_off: u32, m: u32, n0: u32, v: vec4f) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + j * 16u;
    if (n >= p.N) { return; }
    let idx = y_off + m * p.ldy + p.y_col + n;
    var out = p.alpha * v[j];
    if (p.accumulate != 0u) { out += y[idx]; }
    y[idx] = out;
  }
}
