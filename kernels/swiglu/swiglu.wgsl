// swiglu: out[i] = silu(gate[i]) * up[i] with silu(g) = g / (1 + exp(-g)), for i < n.
// 256 threads a workgroup; index = (wg.x + wg.y * GRID_X) * 256 + local. Reads gate, up; writes out.
// Tolerance vs f64 reference: rel 1e-6 (f32 exp).
struct Params { n: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = (wg.x + wg.y * GRID_X) * 256u + t;
  if (i >= p.n) { return; }
  let g = gate[i];
  out[i] = g / (1.0 + exp(-g)) * up[i];
}
