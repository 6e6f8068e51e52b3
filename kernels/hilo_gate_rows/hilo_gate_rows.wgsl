// hilo_gate_rows: multiplies each token's row of an expert's down projection by the expert's
// gate, in place: buf[t·r + j] *= buf[gate_offset + t·E + expert] for t < m, j < r. One thread per
// element, 256 a workgroup; index = (wg.x + wg.y·GRID_X)·256 + local. The rows and the gates live
// in one scratch buffer (one read_write binding; the ranges must not overlap). Reads and writes
// buf. Tolerance vs the f64 reference: rel 1e-7 (one f32 multiply).
struct Params { m: u32, r: u32, experts: u32, expert: u32, gate_offset: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read_write> buf: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * GRID_X) * 256u + li;
  if (i >= p.m * p.r) { return; }
  let t = i / p.r;
  buf[i] = buf[i] * buf[p.gate_offset + t * p.experts + p.expert];
}
