// logprob: per row r of logits [R, V] (row stride V), lse[r] = log(sum_j exp(logits[r, j])),
// out[r] = logits[r, targets[r]] - lse[r] (0 where targets[r] < 0: no target) and the entropy of
// the row's softmax ent[r] = -sum_j p_j log p_j, taken from the same sum pass as
// log(S) + sum_j e_j (m - x_j) / S with e_j = exp(x_j - m), S = sum_j e_j, m the row max (two
// sums of non-negative terms: no cancellation).
// One workgroup of 256 threads per row: a max pass, then a sum of exp(x - max) pass.
// Reads logits, targets; writes out, lse, ent. Tolerance vs f64 reference: rel 1e-6 (f32) for
// out and lse, 1e-5 + rel 1e-5 for ent.
struct Params { R: u32, V: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> ent: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;
var<workgroup> red2: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wg.x + wg.y * GRID_X;
  if (row >= p.R) { return; }
  let base = row * p.V;
  var mx = -3.0e38;
  for (var j = t; j < p.V; j += 256u) { mx = max(mx, logits[base + j]); }
  red[t] = mx;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = max(red[t], red[t + s]); }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();
  var sum = 0.0;
  var wsum = 0.0;
  for (var j = t; j < p.V; j += 256u) {
    let x = logits[base + j];
    let e = exp(x - m);
    sum += e;
    wsum += e * (m - x);
  }
  red[t] = sum;
  red2[t] = wsum;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) {
      red[t] += red[t + s];
      red2[t] += red2[t + s];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    let z = m + log(red[0]);
    lse[row] = z;
    ent[row] = log(red[0]) + red2[0] / red[0];
    let tgt = targets[row];
    out[row] = select(0.0, logits[base + u32(max(tgt, 0))] - z, tgt >= 0);
  }
}
