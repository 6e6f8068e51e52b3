// moe_route_backward: the router logits' gradient through the renormalised gates. The gates are
// a softmax over the selected experts S of the logits, so for each token t < m
//   dz_i = g_i · (dg_i − Σ_e g_e·dg_e)     (0 outside S, where g_i = 0),
// with g[t, e] = gates[gate_offset + t·E + e] and dg[t, e] = d[offset + t·E + e], written over dg.
// dg is read only where g ≠ 0 (the grouped backward leaves the unselected entries unwritten, so
// they may hold anything, NaN included); the output there is 0.
// (No load-balancing term: its gradient needs the probabilities and layer-wide counts.) One
// thread per token, 64 a workgroup; index = (wg.x + wg.y·GRID_X)·64 + local. Reads gates, reads
// and writes d. Tolerance vs the f64 reference: rel 1e-6 (E-term f32 sums).
struct Params { m: u32, experts: u32, gate_offset: u32, offset: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> gates: array<f32>;
@group(0) @binding(1) var<storage, read_write> d: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wg.x + wg.y * GRID_X) * 64u + li;
  if (t >= p.m) { return; }
  let gb = p.gate_offset + t * p.experts;
  let db = p.offset + t * p.experts;
  var mean = 0.0;
  for (var e = 0u; e < p.experts; e++) {
    let g = gates[gb + e];
    if (g != 0.0) { mean += g * d[db + e]; }
  }
  for (var e = 0u; e < p.experts; e++) {
    let g = gates[gb + e];
    d[db + e] = select(0.0, g * (d[db + e] - mean), g != 0.0);
  }
}
