// logprob_backward: gradient of out[r] = logits[r, t_r] - lse[r] (logprob.wgsl) wrt the logits:
//   dlogits[r, j] = d_logprob[r] * ((j == t_r ? 1 : 0) - exp(logits[r, j] - lse[r])),
// and 0 for the whole row where t_r < 0 (no target). lse is the forward kernel's output.
// 256 threads a workgroup, one per element (index = (wg.x + wg.y * GRID_X) * 256 + local).
// Entry points: main reads logits and writes dlogits; in_place overwrites the logits with their
// gradient (saves a [rows, V] buffer). Reads targets, lse, d_logprob.
// Tolerance vs f64 reference: rel 1e-6 (one f32 exp of a difference of O(30) values).
struct Params { R: u32, V: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> d_logprob: array<f32>;

fn grad(idx: u32, logit: f32, V: u32) -> f32 {
  let row = idx / V;
  let tgt = targets[row];
  if (tgt < 0) { return 0.0; }
  let onehot = select(0.0, 1.0, u32(tgt) == idx % V);
  return d_logprob[row] * (onehot - exp(logit - lse[row]));
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let idx = (wg.x + wg.y * GRID_X) * 256u + t;
  if (idx >= p.R * p.V) { return; }
  dlogits[idx] = grad(idx, logits[idx], p.V);
}

@group(0) @binding(0) var<storage, read_write> logits_rw: array<f32>;
@group(0) @binding(4) var<uniform> p4: Params;

@compute @workgroup_size(256)
fn in_place(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let idx = (wg.x + wg.y * GRID_X) * 256u + t;
  if (idx >= p4.R * p4.V) { return; }
  logits_rw[idx] = grad(idx, logits_rw[idx], p4.V);
}
