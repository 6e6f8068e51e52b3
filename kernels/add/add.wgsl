// add: y[i] = (accumulate ? y[i] : 0) + alpha * x[i] for i < n: a copy (accumulate off, alpha 1),
// a scaled copy, or y += alpha * x (residual streams, cotangents added to a gradient).
// 256 threads a workgroup; index = (wg.x + wg.y * GRID_X) * 256 + local. Reads x (and y when
// accumulating); writes y. x must not alias y. Tolerance vs f64 reference: rel 1e-7 (one f32 fma).
struct Params { n: u32, accumulate: u32, alpha: f32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = (wg.x + wg.y * GRID_X) * 256u + t;
  if (i >= p.n) { return; }
  var v = p.alpha * x[i];
  if (p.accumulate != 0u) { v += y[i]; }
  y[i] = v;
}
