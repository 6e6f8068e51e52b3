// hilo_grouped_backward_dx: the input gradient of one routed expert on the tokens of its list
// only (the grouped dispatch's backward): for the j-th token t of expert e's list,
//   dx[t·in + k] += Σ_c du[t·r + c] · A[c·in + k]
// with du the gated row gradients g·du [m, r] (hilo_grouped_backward_rows) and A [r, in]. One
// thread per (list entry, k), 256 a workgroup; index = (wg.x + wg.y·GRID_X)·256 + local, laid
// out entry-major over m entries (threads past the expert's count return). Rows of one expert's
// tokens are distinct, so no two threads write one element. Reads du, A and idx; reads and
// writes dx. Tolerance vs the f64 reference: rel 1e-5 (f32 sums over r ≤ 64 terms).
struct Params { in_f: u32, r: u32, experts: u32, expert: u32, index_offset: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> du: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let o = (wg.x + wg.y * GRID_X) * 256u + li;
  let j = o / p.in_f;
  let k = o % p.in_f;
  let cnt = u32(idx[p.index_offset + p.expert]);
  if (j >= cnt) { return; }
  let list = p.index_offset + 2u * p.experts + u32(idx[p.index_offset + p.experts + p.expert]);
  let t = u32(idx[list + j]);
  var s = 0.0;
  for (var c = 0u; c < p.r; c++) { s += du[t * p.r + c] * a[c * p.in_f + k]; }
  dx[t * p.in_f + k] += s;
}
