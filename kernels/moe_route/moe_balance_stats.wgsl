// moe_balance_stats: the statistics and the value of HILO's load-balancing loss of one routed
// projection (MoLA/AdaMoLE's TopKMoeLayer.get_layer_loss form), over the real tokens t < m
// (mask[t] ≠ 0) of one backward call. Writes stats = [count_0..count_{E−1}, psum_0..psum_{E−1}, N]:
// p = softmax(logits[offset + t·E ..]) in f32, count_e += 1 when expert e is selected (top-k,
// mode 0: fewer than top_k experts rank before e; top-p, mode 1: the experts ranked before e sum
// to less than top_p; rank = descending p, ties to the lower index, as moe_route), psum_e += p_e,
// N += 1. Then adds the projection's loss E · Σ_e (count_e / N)·(psum_e / N) (0 when N = 0) to
// total[0], or writes it there when reset_total ≠ 0 (the first routed projection of a step).
// One workgroup of 64 threads, thread e owns expert e (E ≤ 64) and loops over the tokens; thread
// 0 sums the loss. Reads logits and mask, writes stats, reads and writes total.
// Tolerance vs the f64 reference: counts exact (same selection), psum and loss rel 1e-6.
struct Params { m: u32, experts: u32, top_k: u32, mode: u32, top_p: f32, offset: u32, reset_total: u32 }
const MAX_E: u32 = 64u;
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> total: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> part: array<f32, MAX_E>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) e: u32) {
  let E = p.experts;
  var count = 0.0;
  var psum = 0.0;
  var n = 0.0;
  if (e < E) {
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
      n += 1.0;
    }
    stats[e] = count;
    stats[E + e] = psum;
    if (e == 0u) { stats[2u * E] = n; }
  }
  part[e] = select(0.0, count * psum, e < E);
  workgroupBarrier();
  if (e == 0u) {
    var s = 0.0;
    for (var j = 0u; j < E; j++) { s += part[j]; }
    let loss = select(0.0, f32(E) * s / (n * n), n > 0.0);
    if (p.reset_total != 0u) { total[0] = loss; } else { total[0] += loss; }
  }
}
