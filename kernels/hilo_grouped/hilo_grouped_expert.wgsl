// hilo_grouped_expert: one routed expert's LoRA branch on its own tokens only (the grouped
// dispatch of HILO): for the j-th token t of expert e's list (hilo_grouped_index),
//   y[t, n] += g[t, e] · scale · Σ_c (Σ_k x[t, k] · A[c, k]) · B[n, c],
// with x [m, in], A [r, in], B [out, r], y [m, out]. Workgroup w takes list entries
// [w·TM, w·TM + TM) (TM = 16) and exits when w·TM ≥ counts[e], so a launch of ceil(m / TM)
// workgroups per expert costs work ∝ the expert's tokens, not m. Phase 1: u = x_rows·Aᵀ through
// shared tiles of KT = 32 columns (r ≤ MAX_R = 64; x_times_at in _hilo_rows.wgsl, which the
// launcher appends), scaled by g·scale; phase 2: y rows += u·Bᵀ.
// Each token appears at most once in an expert's list, so the rows a dispatch writes are
// distinct; the experts of one module are separate dispatches, ordered by the pass. Reads x, A, B
// and buf (gates at gate_offset, the index at index_offset; one read_write binding as the index
// kernel's); reads and writes y. Tolerance vs the f64 reference: rel 1e-5 at widths ≤ 64 (f32
// dot products, another summation order than the dense path's matmuls).
struct Params {
  in_f: u32,
  out_f: u32,
  r: u32,
  experts: u32,
  expert: u32,
  gate_offset: u32,
  index_offset: u32,
  scale: f32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
const TM: u32 = 16u;
const KT: u32 = 32u;
const MAX_R: u32 = 64u;
// Outputs of phase 1 per thread: TM · MAX_R / 64.
const PER: u32 = 16u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
var<workgroup> us: array<f32, 1024>; // TM · MAX_R
var<workgroup> gate: array<f32, TM>;
var<workgroup> count: u32;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wg.x + wg.y * GRID_X;
  let E = p.experts;
  let r = p.r;
  if (li == 0u) { count = u32(buf[p.index_offset + p.expert]); }
  let cnt = workgroupUniformLoad(&count);
  let row0 = w * TM;
  if (row0 >= cnt) { return; }
  let rows = min(TM, cnt - row0);
  if (li < TM) {
    if (li < rows) {
      let off = u32(buf[p.index_offset + E + p.expert]);
      let t = u32(buf[p.index_offset + 2u * E + off + row0 + li]);
      tok[li] = t;
      gate[li] = buf[p.gate_offset + t * E + p.expert] * p.scale;
    } else {
      tok[li] = 0u;
      gate[li] = 0.0;
    }
  }
  workgroupBarrier();
  x_times_at(li, rows, r);
  for (var q = 0u; q < PER; q++) {
    let o = li + 64u * q;
    if (o < TM * r) { us[o] = acc[q] * gate[o / r]; }
  }
  workgroupBarrier();
  for (var o = li; o < rows * p.out_f; o += 64u) {
    let row = o / p.out_f;
    let n = o % p.out_f;
    var s = 0.0;
    for (var c = 0u; c < r; c++) { s += us[row * r + c] * b[n * r + c]; }
    y[tok[row] * p.out_f + n] += s;
  }
}
