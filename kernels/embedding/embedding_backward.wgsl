// embedding_backward: scatter-add of the gradient of the gathered rows into the table gradient,
// for the row block [row_start, row_start + rows) of a (possibly split) [vocab, H] matrix:
//   d_table[id - row_start, j] (+)= sum over tokens t with ids[t] == id of d_out[t, j].
// Deterministic without atomics: thread (t, j) works only when t is the first token with its id,
// and then sums that id's tokens in order. Cost O(T^2 * H) per block (fine for the few thousand
// tokens of a micro-batch; a sort by id would make it O(T log T * H)). One dispatch of main covers
// the tokens [t_start, t_start + t_count), so the launcher bounds each dispatch's work (about
// t_count * T * H steps, under GPU watchdogs) by splitting the tokens; each element is still
// summed by one thread in the same order, so the split does not change a bit.
// Entry points: zero clears the block (when not accumulating), main adds.
// 256 threads a workgroup; index = (wg.x + wg.y * GRID_X) * 256 + local, one per (t - t_start, j)
// or per element of the block. Reads ids, d_out; reads and writes d_table. Ids outside every block are
// ignored (callers validate). Tolerance vs f64 reference: rel 1e-6 (f32 sums of a few terms).
struct Params { T: u32, H: u32, row_start: u32, rows: u32, t_start: u32, t_count: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> d_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> d_table: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let idx = (wg.x + wg.y * GRID_X) * 256u + t;
  if (idx >= p.t_count * p.H) { return; }
  let token = p.t_start + idx / p.H;
  let j = idx % p.H;
  let id = ids[token];
  if (id < p.row_start || id >= p.row_start + p.rows) { return; }
  for (var u = 0u; u < token; u++) {
    if (ids[u] == id) { return; }
  }
  var s = 0.0;
  for (var u = token; u < p.T; u++) {
    if (ids[u] == id) { s += d_out[u * p.H + j]; }
  }
  let dst = (id - p.row_start) * p.H + j;
  d_table[dst] = d_table[dst] + s;
}

@group(0) @binding(0) var<storage, read_write> d_block: array<f32>;
@group(0) @binding(1) var<uniform> pz: Params;

@compute @workgroup_size(256)
fn zero(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let idx = (wg.x + wg.y * GRID_X) * 256u + t;
  if (idx < pz.rows * pz.H) { d_block[idx] = 0.0; }
}
