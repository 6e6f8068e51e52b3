// moe_balance_backward: the logits' gradient of coef × HILO's load-balancing loss E·Σ_e f_e·P_e
// of one routed projection (f_e = count_e / N, P_e = psum_e / N, from moe_balance_stats over the
// projection's N real tokens of the backward call), in place: for each token t < m, with
// p = softmax(buf[offset + t·E ..]) and dp_e = E·count_e / N² (0 for padding, mask[t] = 0),
//   buf[offset + t·E + e] = coef · p_e · (dp_e − Σ_j p_j·dp_j).
// One thread per token, 64 a workgroup; index = (wg.x + wg.y·GRID_X)·64 + local. E ≤ 64. Reads
// mask and stats, reads and writes buf. Tolerance vs the f64 reference: rel 1e-5 (the difference
// dp − Σ p·dp cancels; measured 1.1e-6).
struct Params { m: u32, experts: u32, offset: u32, coef: f32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
const MAX_E: u32 = 64u;
@group(0) @binding(0) var<storage, read_write> buf: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wg.x + wg.y * GRID_X) * 64u + li;
  if (t >= p.m) { return; }
  let E = p.experts;
  let base = p.offset + t * E;
  if (mask[t] == 0u) {
    for (var e = 0u; e < E; e++) { buf[base + e] = 0.0; }
    return;
  }
  let n = stats[2u * E];
  var prob: array<f32, MAX_E>;
  var mx = buf[base];
  for (var e = 1u; e < E; e++) { mx = max(mx, buf[base + e]); }
  var sum = 0.0;
  for (var e = 0u; e < E; e++) {
    prob[e] = exp(buf[base + e] - mx);
    sum += prob[e];
  }
  var pm = 0.0;
  for (var e = 0u; e < E; e++) {
    prob[e] = prob[e] / sum;
    pm += prob[e] * (f32(E) * stats[e] / (n * n));
  }
  for (var e = 0u; e < E; e++) {
    let dp = f32(E) * stats[e] / (n * n);
    buf[base + e] = p.coef * prob[e] * (dp - pm);
  }
}
