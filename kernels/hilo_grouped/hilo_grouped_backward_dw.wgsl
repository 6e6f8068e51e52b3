// hilo_grouped_backward_dw: a weight gradient of one routed expert summed over the tokens of its
// list only (the grouped dispatch's backward):
//   w[i·cols + c] += alpha · Σ_{j < counts[e]} lhs[t_j·rows + i] · rhs[t_j·cols + c]
// with t_j the j-th token of expert e's list (hilo_grouped_index, read from idx). Used for
// dB (lhs = dy [m, out], rhs = the gated rows g·u [m, r], alpha = scale) and dA (lhs = the gated
// row gradients g·du [m, r], rhs = x [m, in], alpha = 1). One thread per element of w, 256 a
// workgroup; index = (wg.x + wg.y·GRID_X)·256 + local; the tokens in list order. Reads lhs, rhs
// and idx; reads and writes w. Tolerance vs the f64 reference: rel 1e-5 (f32 sums over ≤ m terms).
struct Params { rows: u32, cols: u32, experts: u32, expert: u32, index_offset: u32, alpha: f32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> lhs: array<f32>;
@group(0) @binding(1) var<storage, read> rhs: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let o = (wg.x + wg.y * GRID_X) * 256u + li;
  if (o >= p.rows * p.cols) { return; }
  let i = o / p.cols;
  let c = o % p.cols;
  let cnt = u32(idx[p.index_offset + p.expert]);
  let list = p.index_offset + 2u * p.experts + u32(idx[p.index_offset + p.experts + p.expert]);
  var s = 0.0;
  for (var j = 0u; j < cnt; j++) {
    let t = u32(idx[list + j]);
    s += lhs[t * p.rows + i] * rhs[t * p.cols + c];
  }
  w[o] += p.alpha * s;
}
