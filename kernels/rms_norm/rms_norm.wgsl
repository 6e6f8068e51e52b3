// rms_norm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w[:], for rows r < R of length D.
// One workgroup of 64 threads per row; the row index is wg.x + wg.y * GRID_X (2-D grid).
// Used for the layer norms (D = hidden) and Qwen3's per-head QK-norm (rows = tokens * heads).
// Reads x, w; writes y (must not alias x). Tolerance vs f64 reference: rel 1e-5 (f32).
struct Params { R: u32, D: u32, eps: f32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wg.x + wg.y * GRID_X;
  if (row >= p.R) { return; }
  let base = row * p.D;
  var s = 0.0;
  for (var i = t; i < p.D; i += 64u) {
    let v = x[base + i];
    s = fma(v, v, s);
  }
  partial[t] = s;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (t < stride) { partial[t] += partial[t + stride]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(partial[0] / f32(p.D) + p.eps);
  for (var i = t; i < p.D; i += 64u) {
    y[base + i] = x[base + i] * inv * w[i];
  }
}
