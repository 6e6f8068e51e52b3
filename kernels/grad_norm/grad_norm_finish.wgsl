// grad_norm_finish: stage 2 of the global gradient norm. One workgroup of 256 threads adds
// partials[0 .. p.count) in a fixed order (thread t takes t, t + 256, ...; then a fixed tree),
// and thread 0 writes, with max_norm = out[2] and grad_scale = out[3] (written by the launcher):
//   out[1] = norm  = grad_scale · sqrt(Σ partials)
//   out[0] = scale = min(1, max_norm / (norm + 1e-6))   (1 when max_norm <= 0: no clipping)
// the PyTorch clip_grad_norm_ factor, read by adamw from the buffer (no readback).
// Reads partials, out[2..4); writes out[0..2). Tolerance vs f64 reference: rel 1e-5 (f32).
struct Params { count: u32 }
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = t; i < p.count; i += 256u) { s += partials[i]; }
  red[t] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (t < k) { red[t] += red[t + k]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    let max_norm = out[2];
    let norm = out[3] * sqrt(red[0]);
    out[1] = norm;
    out[0] = select(1.0, min(1.0, max_norm / (norm + 1e-6)), max_norm > 0.0);
  }
}
