// moe_balance_stats: the statistics of HILO's load-balancing loss over one routed projection,
// added to (or, with reset, written over) stats = [count_0..count_{E−1}, psum_0..psum_{E−1}, pairs]:
// for each real token t < m (mask[t] ≠ 0), p = softmax(logits[offset + t·E ..]) in f32, count_e
// += 1 when expert e is selected (top-k, mode 0: fewer than top_k experts rank before e; top-p,
// mode 1: the experts ranked before e sum to less than top_p; rank = descending p, ties to the
// lower index, as moe_route), psum_e += p_e, pairs += 1. One workgroup of 64 threads, thread e
// owns expert e (E ≤ 64) and loops over the tokens. Reads logits and mask, reads and writes stats.
// Tolerance vs the f64 reference: counts exact (same selection), psum rel 1e-6.
struct Params { m: u32, experts: u32, top_k: u32, mode: u32, top_p: f32, offset: u32, reset: u32 }
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) e: u32) {
  let E = p.experts;
  if (e >= E) { return; }
  var count = 0.0;
  var psum = 0.0;
  var pairs = 0.0;
  for (var t = 0u; t < p.m; t++) {
    if (mask[t] == 0u) { continue; }
    let base = p.offset + t * E;
    var mx = logits[base];
    for (var j = 1u; j < E; j++) { mx = max(mx, logits[base + j]); }
    var sum = 0.0;
    for (var j = 0u; j < E; j++) { sum += exp(logits[base + j] - mx); }
    let pe = exp(logits[base + e] - mx) / sum;
    var before = 0u;
    var mass = 0.0;
    for (var j = 0u; j < E; j++) {
      let pj = exp(logits[base + j] - mx) / sum;
      if (pj > pe || (pj == pe && j < e)) {
        before += 1u;
        mass += pj;
      }
    }
    var selected = false;
    if (p.mode == 0u) { selected = before < p.top_k; } else { selected = mass < p.top_p; }
    if (selected) { count += 1.0; }
    psum += pe;
    pairs += 1.0;
  }
  if (p.reset != 0u) {
    stats[e] = count;
    stats[E + e] = psum;
    if (e == 0u) { stats[2u * E] = pairs; }
  } else {
    stats[e] += count;
    stats[E + e] += psum;
    if (e == 0u) { stats[2u * E] += pairs; }
  }
}
