// sample: picks the next token of each row of logits [R, V] on the GPU and records it, so that a
// decode loop never reads a token back to feed the next step. One workgroup of WG threads a row
// (override, a power of two from 32 to 256; the launcher sizes it to the vocabulary).
//   info  (u32) [seed_lo, seed_hi, row_seq[R], eos[n_eos], stop[n_stop]]: row r holds sequence
//         row_seq[r] (its output column; its RNG stream is seq_base + row_seq[r], so that the
//         parts of a batch split over calls draw the unsplit batch's numbers); eos/stop ids end
//         a sequence.
//   ctrl  (u32) [slot, step]: the step being sampled is ctrl[1] (advanced by decode_advance).
//   state (u32) [n_seq, 2]: (reason, length); reason 0 running, 1 eos, 2 stop, 3 length.
//   out   (u32) [max_new, n_seq, 3]: (token, bits of the sampling log-prob, bits of the model
//         log-prob log_softmax(logits)[token]) at [step, seq].
//   ids   (u32) [R]: the chosen token, the next input of row r.
// A row whose sequence already stopped (or step >= max_new) writes nothing.
// Minimum length (HF min_new_tokens): while step < min_new the eos ids are banned, their logits
// taken as -inf for the choice and the sampling distribution (skipped by every pass below); the
// model log-prob and its log partition function still use the raw logits.
// Greedy (greedy = 1): the lowest index of the largest logit; sampling log-prob 0.
// Sampling: z = logits / temperature; kept set = {z >= threshold}, the threshold found by bisection
// over order-preserving u32 keys of z that snaps to the nearest element key on each side (top-k:
// count >= k; top-p: mass >= top_p * top-k mass; at most 33 passes each, a handful when values are
// well separated), intersected with exp(z - zmax) >= min_p; then Gumbel-max over the kept set:
// argmax_j z_j - log(-log u_j), u_j from Philox4x32-10 at counter (j, seq_base + seq, step, 0),
// key = seed, u = ((bits >> 9) + 0.5) / 2^23, -log u_j computed accurately next to 1 (see gumbel).
// Ties at a threshold are all kept; argmax ties take the lowest j.
// Reads logits, info, ctrl; writes ids, out, state. Tolerance vs f64 reference (sample_ref.ts):
// identical tokens except where two Gumbel scores are within the noise's error: f32 rounding (~1e-6)
// with an accurate log, up to ~1e-4 with a log only as accurate as WGSL requires (2^-21 absolute on
// [0.5, 2]; see gumbel and sample_test.ts); log-probs rel 1e-5.
struct Params {
  R: u32, V: u32, n_seq: u32, max_new: u32,
  greedy: u32, top_k: u32, n_eos: u32, n_stop: u32,
  temperature: f32, top_p: f32, min_p: f32, min_new: u32,
  seq_base: u32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> ctrl: array<u32>;
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> state: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

override WG: u32 = 256u;
const LOWEST = -3.0e38;
const NONE = 0xffffffffu;

// Per-thread partials of one pass: a sum, a count, the min and max of keys, and the largest
// score with its (lowest) index.
struct Red { s: f32, c: u32, mn: u32, mx: u32, best: f32, at: u32 }

var<workgroup> r_s: array<f32, WG>;
var<workgroup> r_c: array<u32, WG>;
var<workgroup> r_mn: array<u32, WG>;
var<workgroup> r_mx: array<u32, WG>;
var<workgroup> r_best: array<f32, WG>;
var<workgroup> r_at: array<u32, WG>;
var<workgroup> gate: u32;

fn empty() -> Red { return Red(0.0, 0u, NONE, 0u, LOWEST, NONE); }

// Order-preserving map of a float to a u32 (a > b <=> key(a) > key(b) for non-NaN floats).
fn key(f: f32) -> u32 {
  let b = bitcast<u32>(f);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn mulhi(a: u32, b: u32) -> u32 {
  let a_lo = a & 0xffffu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xffffu;
  let b_hi = b >> 16u;
  let lolo = a_lo * b_lo;
  let lohi = a_lo * b_hi;
  let hilo = a_hi * b_lo;
  let cross = (lolo >> 16u) + (lohi & 0xffffu) + (hilo & 0xffffu);
  return a_hi * b_hi + (lohi >> 16u) + (hilo >> 16u) + (cross >> 16u);
}

// Gumbel noise -log(e) of one Philox word, e = -log(u) ~ Exp(1), u = ((bits >> 9) + 0.5) / 2^23.
// WGSL (like D3D's log and Metal fast math) only bounds log's absolute error by 2^-21 on
// [0.5, 2], so next to u = 1 (-log u down to 2^-24) log(u) may come out 0 (noise +inf: that token
// always wins) or positive (NaN). So for d = 1 - u < 1/64 (d is exact: computed from the bits)
// e is the series d + d^2/2 + d^3/3 + d^4/4 (truncation < d^4/5 <= 1.2e-8 relative); above,
// -log(u) is within 2^-21 / d <= 2^-15 relative. Mirrored by gumbelNoise in philox_ref.ts.
// The 23-bit u bounds the noise to [-2.812, 16.636]: a token whose probability is below 3.6e-9 of
// the most likely one's is never drawn (about the bound of a float32 exponential race).
fn gumbel(bits: u32) -> f32 {
  let k = bits >> 9u;
  let u = (f32(k) + 0.5) * (1.0 / 8388608.0);
  let d = (f32(0x7fffffu - k) + 0.5) * (1.0 / 8388608.0);
  let e = select(-log(u), d * (1.0 + d * (0.5 + d * (1.0 / 3.0 + d * 0.25))), d < 1.0 / 64.0);
  return -log(e);
}

fn philox(counter: vec4u, seed: vec2u) -> vec4u {
  var c = counter;
  var k = seed;
  for (var r = 0u; r < 10u; r++) {
    let hi0 = mulhi(0xD2511F53u, c.x);
    let lo0 = 0xD2511F53u * c.x;
    let hi1 = mulhi(0xCD9E8D57u, c.z);
    let lo1 = 0xCD9E8D57u * c.z;
    c = vec4u(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k += vec2u(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}

// Whether token j is banned at this step (an eos id while step < min_new; `ban` says the latter).
fn banned(ban: bool, j: u32) -> bool {
  if (!ban) { return false; }
  for (var i = 0u; i < p.n_eos; i++) {
    if (info[2u + p.R + i] == j) { return true; }
  }
  return false;
}

// Combines every thread's partials; all threads get the result.
fn reduce(t: u32, v: Red) -> Red {
  r_s[t] = v.s;
  r_c[t] = v.c;
  r_mn[t] = v.mn;
  r_mx[t] = v.mx;
  r_best[t] = v.best;
  r_at[t] = v.at;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      let u = t + s;
      r_s[t] += r_s[u];
      r_c[t] += r_c[u];
      r_mn[t] = min(r_mn[t], r_mn[u]);
      r_mx[t] = max(r_mx[t], r_mx[u]);
      if (r_best[u] > r_best[t] || (r_best[u] == r_best[t] && r_at[u] < r_at[t])) {
        r_best[t] = r_best[u];
        r_at[t] = r_at[u];
      }
    }
    workgroupBarrier();
  }
  let r = Red(r_s[0], r_c[0], r_mn[0], r_mx[0], r_best[0], r_at[0]);
  workgroupBarrier();
  return r;
}

// The largest key t in [lo0, hi0) whose top set {key(z) >= t} holds at least `need` tokens
// (by_mass false) or `need` mass sum exp(z - zmax) (by_mass true); lo0 must be an element key
// that qualifies and hi0 a key that does not. Bisection that snaps lo up to the smallest key of
// a qualifying set and hi down to just above the largest key below a failing midpoint.
fn search(
  t: u32, base: u32, lo0: u32, hi0: u32, by_mass: bool, need: f32, zmax: f32, ban: bool,
) -> u32 {
  var lo = lo0;
  var hi = hi0;
  for (var it = 0u; it < 40u; it++) {
    if (t == 0u) { gate = select(0u, 1u, hi - lo <= 1u); }
    if (workgroupUniformLoad(&gate) != 0u) { break; }
    let mid = lo + (hi - lo) / 2u;
    var acc = empty();
    for (var j = t; j < p.V; j += WG) {
      if (banned(ban, j)) { continue; }
      let z = logits[base + j] / p.temperature;
      let k = key(z);
      if (k >= mid) {
        acc.s += exp(z - zmax);
        acc.c += 1u;
        acc.mn = min(acc.mn, k);
      } else {
        acc.mx = max(acc.mx, k);
      }
    }
    let r = reduce(t, acc);
    if (select(f32(r.c), r.s, by_mass) >= need) { lo = r.mn; } else { hi = r.mx + 1u; }
  }
  return lo;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wg.x + wg.y * GRID_X;
  if (row >= p.R) { return; }
  let seq = info[2u + row];
  let step = ctrl[1];
  if (t == 0u) { gate = select(state[seq * 2u], 255u, step >= p.max_new); }
  if (workgroupUniformLoad(&gate) != 0u) { return; }
  let base = row * p.V;
  let temp = select(p.temperature, 1.0, p.greedy != 0u);
  let ban = step < p.min_new && p.n_eos > 0u;

  // Allowed logits: the max and its lowest index (greedy), the smallest key of z = logits / temp;
  // then over all raw logits (the banned ones are few: read directly) the log partition function.
  var a = empty();
  for (var j = t; j < p.V; j += WG) {
    if (banned(ban, j)) { continue; }
    let l = logits[base + j];
    if (l > a.best) { a.best = l; a.at = j; }
    a.mn = min(a.mn, key(l / temp));
  }
  let first = reduce(t, a);
  let lmax = first.best;
  var tok = first.at;
  var raw_max = lmax;
  if (ban) {
    for (var i = 0u; i < p.n_eos; i++) { raw_max = max(raw_max, logits[base + info[2u + p.R + i]]); }
  }
  var b = empty();
  for (var j = t; j < p.V; j += WG) { b.s += exp(logits[base + j] - raw_max); }
  let log_z = raw_max + log(reduce(t, b).s);

  var lp_sample = 0.0;
  if (p.greedy == 0u) {
    let zmax = lmax / temp;
    let top = key(zmax) + 1u;
    var lo = first.mn;
    if (p.top_k > 0u && p.top_k < p.V) {
      lo = search(t, base, lo, top, false, f32(p.top_k), zmax, ban);
    }
    if (p.top_p < 1.0) {
      var m = empty();
      for (var j = t; j < p.V; j += WG) {
        let z = logits[base + j] / temp;
        if (key(z) >= lo && !banned(ban, j)) { m.s += exp(z - zmax); }
      }
      lo = search(t, base, lo, top, true, p.top_p * reduce(t, m).s, zmax, ban);
    }
    // Gumbel-max over the kept set, and the kept mass for the sampling log-prob.
    let seed = vec2u(info[0], info[1]);
    var g = empty();
    for (var j = t; j < p.V; j += WG) {
      let z = logits[base + j] / temp;
      let w = exp(z - zmax);
      if (key(z) >= lo && (p.min_p <= 0.0 || w >= p.min_p) && !banned(ban, j)) {
        g.s += w;
        let score = z + gumbel(philox(vec4u(j, p.seq_base + seq, step, 0u), seed).x);
        if (score > g.best) { g.best = score; g.at = j; }
      }
    }
    let drawn = reduce(t, g);
    tok = drawn.at;
    lp_sample = (logits[base + tok] / temp - zmax) - log(drawn.s);
  }

  if (t == 0u) {
    let lp_model = logits[base + tok] - log_z;
    var reason = 0u;
    for (var i = 0u; i < p.n_eos; i++) {
      if (info[2u + p.R + i] == tok) { reason = 1u; }
    }
    if (reason == 0u) {
      for (var i = 0u; i < p.n_stop; i++) {
        if (info[2u + p.R + p.n_eos + i] == tok) { reason = 2u; }
      }
    }
    if (reason == 0u && step + 1u >= p.max_new) { reason = 3u; }
    state[seq * 2u] = reason;
    state[seq * 2u + 1u] = step + 1u;
    let o = (step * p.n_seq + seq) * 3u;
    out[o] = tok;
    out[o + 1u] = bitcast<u32>(lp_sample);
    out[o + 2u] = bitcast<u32>(lp_model);
    ids[row] = tok;
  }
}
