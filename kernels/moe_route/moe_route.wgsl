// moe_route: the HILO / MoLA router's gates, in place. For each token t < m, reads the E router
// logits buf[offset + t·E + e], computes p = softmax(logits) in f32 (max subtracted), selects S
// by repeatedly taking the largest remaining p (strictly larger wins, so ties go to the lower
// index) until top_k experts are taken (mode 0, top-k) or their p sum to ≥ top_p (mode 1, top-p;
// all E at most), and writes the gates g_e = p_e / Σ_{j∈S} p_j for e ∈ S, 0 elsewhere, over the
// logits. One thread per token, 64 a workgroup; index = (wg.x + wg.y·GRID_X)·64 + local.
// E ≤ 64 (MAX_E). Reads and writes buf (one read_write binding, so the logits may sit in the same
// scratch buffer as other data). Tolerance vs the f64 reference (same selection): abs 1e-6 on
// gates (f32 exp and division); a selection differs only where two p are within f32 rounding.
struct Params { m: u32, experts: u32, top_k: u32, mode: u32, top_p: f32, offset: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
const MAX_E: u32 = 64u;
@group(0) @binding(0) var<storage, read_write> buf: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wg.x + wg.y * GRID_X) * 64u + li;
  if (t >= p.m) { return; }
  let E = p.experts;
  let base = p.offset + t * E;
  var prob: array<f32, MAX_E>;
  var sel: array<u32, MAX_E>;
  var mx = buf[base];
  for (var e = 1u; e < E; e++) { mx = max(mx, buf[base + e]); }
  var sum = 0.0;
  for (var e = 0u; e < E; e++) {
    prob[e] = exp(buf[base + e] - mx);
    sum += prob[e];
    sel[e] = 0u;
  }
  for (var e = 0u; e < E; e++) { prob[e] = prob[e] / sum; }
  var mass = 0.0;
  for (var taken = 0u; taken < E; taken++) {
    if (p.mode == 0u) {
      if (taken >= p.top_k) { break; }
    } else if (mass >= p.top_p) {
      break;
    }
    var best = E;
    for (var e = 0u; e < E; e++) {
      if (sel[e] == 0u && (best == E || prob[e] > prob[best])) { best = e; }
    }
    sel[best] = 1u;
    mass += prob[best];
  }
  for (var e = 0u; e < E; e++) {
    buf[base + e] = select(0.0, prob[e] / mass, sel[e] == 1u);
  }
}
