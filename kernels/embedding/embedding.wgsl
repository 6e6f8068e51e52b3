// embedding: out[t, :] = table[ids[t] - row_start, :] for the tokens whose id lies in this row
// block [row_start, row_start + rows) of the (possibly split) embedding matrix; other tokens are
// left for the dispatches of the other blocks. 256 threads a workgroup, one per (t, j).
// Reads ids, table; writes out. Exact (a copy).
struct Params { T: u32, H: u32, row_start: u32, rows: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let idx = (wg.x + wg.y * GRID_X) * 256u + t;
  if (idx >= p.T * p.H) { return; }
  let token = idx / p.H;
  let j = idx % p.H;
  let id = ids[token];
  if (id < p.row_start || id >= p.row_start + p.rows) { return; }
  out[idx] = table[(id - p.row_start) * p.H + j];
}
