// clipped_pg: the clipped policy-gradient loss (DAPO / PPO with dual clip) over per-token f32
// arrays [batch, width] (width = tokens per sequence: seqLen − 1 as the CPU lays them out, or
// seqLen in the train step's [tokens] layout with mask 0 at each sequence's last position):
//   r = exp(clamp(lp − old, ±20)), l1 = −A·r, l2 = −A·clip(r, 1 − clip_low, 1 + clip_high),
//   l = max(l1, l2), and with the dual clip c and A < 0: l = min(l, −A·c);
// aggregated as verl's agg_loss (agg 0 token-mean, 1 seq-mean-token-sum, 2 seq-mean-token-mean,
// 3 seq-mean-token-sum-norm), the float64 reference being trainer/losses clippedPolicyLoss.
// Variant (override TOKEN_WEIGHTS, default false): a constant weight per token tw[i] (truncated
// importance sampling, min(π_old / π_sampler, C)) multiplies the token's l and d l / d lp; the
// clip counts, kl and max r do not change. Without it tw (binding 4) is bound but never read,
// and the numbers are those of the unweighted kernel bit for bit.
// Three entry points, recorded in this order in one pass:
//   seq_stats: one workgroup (256 threads) per sequence b; reads logprobs, old, adv, mask, tw;
//              writes stats[b·8 ..]: Σ l, tokens, clipped low, clipped high, dual-capped,
//              Σ (old − lp), max r (over the sequence's loss tokens), 0.
//   finish:    one workgroup; reads stats; writes out[0..10): value, clipfrac, clipfrac_low,
//              clipfrac_high, clipfrac_dual, ppo_kl, ratio_max, tokens, 1 / denominator (0 when
//              nothing counts), sequences with a loss token. Fixed-order sums: deterministic.
//   grad:      one thread per token; reads the inputs, stats, out[8]; writes (or with
//              ACCUMULATE adds into) d_logprobs[i] = weight · (d l / d lp) · agg weight (· tw[i]),
//              0 where the mask is 0 or a clip is active.
// Params: flags bit 0 = dual clip on, bit 1 = accumulate, bit 2 = normalizer given (else the
// token or sequence count); max_len = token budget of agg 3.
// Tolerance vs the f64 reference (f32 inputs): value and metrics rel 1e-5, d_logprobs rel 1e-5
// (one exp and sums of ≤ 2^16 terms per sequence).
struct Params {
  batch: u32, width: u32, agg: u32, flags: u32,
  clip_low: f32, clip_high: f32, dual_clip: f32, normalizer: f32,
  max_len: f32, weight: f32,
}

const STATS = 8u;

override TOKEN_WEIGHTS: bool = false;

// Per-token loss and its derivative with respect to lp; flags: 1 clipped low, 2 clipped high,
// 4 dual-capped.
struct Tok { l: f32, dl: f32, r: f32, kinds: u32 }

fn token(lp: f32, old: f32, a: f32, p: Params) -> Tok {
  let x = lp - old;
  let xc = clamp(x, -20.0, 20.0);
  let r = exp(xc);
  let dr = select(0.0, r, xc == x);
  let l1 = -a * r;
  let l2 = -a * clamp(r, 1.0 - p.clip_low, 1.0 + p.clip_high);
  var t = Tok(l1, -a * dr, r, 0u);
  if (l2 > l1) {
    t.l = l2;
    t.dl = 0.0;
    t.kinds = select(2u, 1u, a < 0.0);
  }
  if ((p.flags & 1u) != 0u && a < 0.0 && t.l > -a * p.dual_clip) {
    t.l = -a * p.dual_clip;
    t.dl = 0.0;
    t.kinds |= 4u;
  }
  return t;
}

@group(0) @binding(0) var<storage, read> lp: array<f32>;
@group(0) @binding(1) var<storage, read> old: array<f32>;
@group(0) @binding(2) var<storage, read> adv: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read> tw: array<f32>;

// ---- seq_stats -------------------------------------------------------------------------------
@group(0) @binding(5) var<storage, read_write> stats_w: array<f32>;
@group(0) @binding(6) var<uniform> p5: Params;

var<workgroup> red: array<f32, 1792>; // 7 fields × 256 threads

@compute @workgroup_size(256)
fn seq_stats(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let b = wg.x + wg.y * 32768u;
  if (b >= p5.batch) { return; }
  var acc = array<f32, 7>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  for (var k = t; k < p5.width; k += 256u) {
    let i = b * p5.width + k;
    if (mask[i] == 0.0) { continue; }
    let tk = token(lp[i], old[i], adv[i], p5);
    var l = tk.l;
    if (TOKEN_WEIGHTS) { l *= tw[i]; }
    acc[0] += l;
    acc[1] += 1.0;
    acc[2] += select(0.0, 1.0, (tk.kinds & 1u) != 0u);
    acc[3] += select(0.0, 1.0, (tk.kinds & 2u) != 0u);
    acc[4] += select(0.0, 1.0, (tk.kinds & 4u) != 0u);
    acc[5] += old[i] - lp[i];
    acc[6] = max(acc[6], tk.r);
  }
  for (var f = 0u; f < 7u; f++) { red[f * 256u + t] = acc[f]; }
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) {
      for (var f = 0u; f < 6u; f++) { red[f * 256u + t] += red[f * 256u + t + s]; }
      red[6u * 256u + t] = max(red[6u * 256u + t], red[6u * 256u + t + s]);
    }
    workgroupBarrier();
  }
  if (t < 7u) { stats_w[b * STATS + t] = red[t * 256u]; }
  if (t == 7u) { stats_w[b * STATS + 7u] = 0.0; }
}

// ---- finish ----------------------------------------------------------------------------------
@group(0) @binding(0) var<storage, read> stats_f: array<f32>;
@group(0) @binding(1) var<storage, read_write> out_f: array<f32>;
@group(0) @binding(2) var<uniform> p2: Params;

var<workgroup> tot: array<f32, 2304>; // 9 fields × 256 threads

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) t: u32) {
  // Fields: 0 Σ l, 1 tokens, 2 low, 3 high, 4 dual, 5 kl, 6 max r, 7 sequences, 8 Σ seq means.
  var acc = array<f32, 9>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  for (var b = t; b < p2.batch; b += 256u) {
    let n = stats_f[b * STATS + 1u];
    for (var f = 0u; f < 6u; f++) { acc[f] += stats_f[b * STATS + f]; }
    acc[6] = max(acc[6], stats_f[b * STATS + 6u]);
    if (n > 0.0) {
      acc[7] += 1.0;
      acc[8] += stats_f[b * STATS] / n;
    }
  }
  for (var f = 0u; f < 9u; f++) { tot[f * 256u + t] = acc[f]; }
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) {
      for (var f = 0u; f < 9u; f++) {
        if (f == 6u) {
          tot[f * 256u + t] = max(tot[f * 256u + t], tot[f * 256u + t + s]);
        } else {
          tot[f * 256u + t] += tot[f * 256u + t + s];
        }
      }
    }
    workgroupBarrier();
  }
  if (t != 0u) { return; }
  let sum_l = tot[0];
  let tokens = tot[256];
  let seqs = tot[7u * 256u];
  let given = (p2.flags & 4u) != 0u;
  var denom: f32;
  var num = sum_l;
  switch p2.agg {
    case 0u: { denom = select(tokens, p2.normalizer, given); }
    case 1u: { denom = select(seqs, p2.normalizer, given); }
    case 2u: {
      denom = select(seqs, p2.normalizer, given);
      num = tot[8u * 256u];
    }
    default: { denom = select(f32(p2.batch), p2.normalizer, given) * p2.max_len; }
  }
  let live = tokens > 0.0 && denom > 0.0;
  let inv_tokens = select(0.0, 1.0 / tokens, tokens > 0.0);
  out_f[0] = select(0.0, num / denom, live);
  out_f[1] = (tot[2u * 256u] + tot[3u * 256u]) * inv_tokens;
  out_f[2] = tot[2u * 256u] * inv_tokens;
  out_f[3] = tot[3u * 256u] * inv_tokens;
  out_f[4] = tot[4u * 256u] * inv_tokens;
  out_f[5] = tot[5u * 256u] * inv_tokens;
  out_f[6] = tot[6u * 256u];
  out_f[7] = tokens;
  out_f[8] = select(0.0, 1.0 / denom, live);
  out_f[9] = seqs;
}

// ---- grad ------------------------------------------------------------------------------------
@group(0) @binding(5) var<storage, read> stats_g: array<f32>;
@group(0) @binding(6) var<storage, read> out_g: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_lp: array<f32>;
@group(0) @binding(8) var<uniform> p7: Params;

@compute @workgroup_size(256)
fn grad(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = (wg.x + wg.y * 32768u) * 256u + t;
  if (i >= p7.batch * p7.width) { return; }
  var g = 0.0;
  if (mask[i] != 0.0) {
    let tk = token(lp[i], old[i], adv[i], p7);
    var w = out_g[8];
    if (p7.agg == 2u) { w /= stats_g[(i / p7.width) * STATS + 1u]; }
    var dl = tk.dl;
    if (TOKEN_WEIGHTS) { dl *= tw[i]; }
    g = p7.weight * w * dl;
  }
  if ((p7.flags & 2u) != 0u) { d_lp[i] += g; } else { d_lp[i] = g; }
}
