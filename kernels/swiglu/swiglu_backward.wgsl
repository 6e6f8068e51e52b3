// swiglu_backward: gradients of out = silu(gate) * up with silu(g) = g * sig(g), sig(g) = 1/(1+e^-g):
//   d_up[i] = d_out[i] * silu(gate[i]),
//   d_gate[i] = d_out[i] * up[i] * sig(g) * (1 + g * (1 - sig(g))), g = gate[i], for i < n.
// 256 threads a workgroup; index = (wg.x + wg.y * GRID_X) * 256 + local.
// Reads d_out, gate, up; writes d_gate, d_up (neither may alias an input).
// Tolerance vs f64 reference: rel 1e-6 (f32 exp and a few products).
struct Params { n: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> d_out: array<f32>;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_gate: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_up: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = (wg.x + wg.y * GRID_X) * 256u + t;
  if (i >= p.n) { return; }
  let g = gate[i];
  let sig = 1.0 / (1.0 + exp(-g));
  let go = d_out[i];
  d_up[i] = go * g * sig;
  d_gate[i] = go * up[i] * sig * (1.0 + g * (1.0 - sig));
}
