// swiglu: out[i] = silu(gate[i]) * up[i] with silu(g) = g / (1 + exp(-g)), for i < n.
// 256 threads a workgroup; index = (wg.x + wg.y * GRID_X) * 256 + local. Reads gate, up; writes out.
// Input layout: out is [n / cols, cols] contiguous; element (r, c) of gate is read at
// r * ld + gate_off + c, of up at r * ld + up_off + c. The launcher's default (cols = ld = n,
// offsets 0) reads index i; a fused gate|up projection's output [rows, 2 I], bound as both, is
// cols = I, ld = 2 I, gate_off = 0, up_off = I.
// Tolerance vs f64 reference: rel 1e-6 (f32 exp).
struct Params { n: u32, cols: u32, ld: u32, gate_off: u32, up_off: u32 }
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
  let r = i / p.cols;
  let at = r * p.ld + i - r * p.cols;
  let g = gate[at + p.gate_off];
  out[i] = g / (1.0 + exp(-g)) * up[at + p.up_off];
}
