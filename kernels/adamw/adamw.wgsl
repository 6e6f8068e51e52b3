// adamw: one fused, in-place AdamW step (torch.optim.AdamW) over n float32 parameters; one
// thread per element, 256 per workgroup, workgroup index wg.x + wg.y * GRID_X (2-D grid):
//   g     = grad[i] * h.grad_scale * clip[p.clip_at]
//   m     = b1 * m + (1 - b1) * g            v = b2 * v + (1 - b2) * g * g
//   param = param * (1 - lr * wd) - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
//   grad  = 0                                 (only when p.zero_grad != 0)
// with bc1 = 1 - b1^t, bc2 = 1 - b2^t for the 1-based step t. The per-step scalars (lr, bias
// corrections, grad scale) come from `h`, a small caller-owned buffer (UNIFORM | STORAGE usage)
// rewritten by the launcher with queue.writeBuffer, so no uniform is cached per step; it is read
// as a uniform (llvmpipe reads it ~2x faster than a storage struct). `clip` is grad_norm's output
// (clip scale at index 0) or, without clipping, `h` itself with clip_at at its constant 1.0.
// Reads and writes param, m, v (and grad when zeroing); reads grad, h, clip.
// Tolerance vs f64 reference: rel 1e-6 on param, m, v (f32; a few roundings per element).
struct Hyper {
  b1: f32, one_minus_b1: f32, b2: f32, one_minus_b2: f32,
  eps: f32, decay: f32, step_size: f32, inv_sqrt_bc2: f32,
  grad_scale: f32, one: f32, pad0: f32, pad1: f32,
}
struct Params { n: u32, clip_at: u32, zero_grad: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> h: Hyper;
@group(0) @binding(5) var<storage, read> clip: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = (wg.x + wg.y * GRID_X) * 256u + t;
  if (i >= p.n) { return; }
  let g = grad[i] * (h.grad_scale * clip[p.clip_at]);
  let mi = h.b1 * m[i] + h.one_minus_b1 * g;
  let vi = h.b2 * v[i] + h.one_minus_b2 * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = param[i] * h.decay - h.step_size * mi / (sqrt(vi) * h.inv_sqrt_bc2 + h.eps);
  if (p.zero_grad != 0u) { grad[i] = 0.0; }
}
