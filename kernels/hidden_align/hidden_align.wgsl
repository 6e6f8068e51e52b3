// hidden_align: the Hidden-Align term on the GPU (float64 reference: trainer/losses
// hiddenAlignLoss). Sequence b takes part when correct[b] != 0 and anchors[b] >= 0; its anchor
// row h_b = hidden[b, anchors[b], :] of hidden [batch, seq_len, H]; u_b = h_b / max(|h_b|, 1e-6).
// A group (groups[b] in [0, G)) contributes with >= 2 taking-part rows, or >= 1 when a target is
// supplied (flags bit 2 and cent_mask[g] != 0: cent_in[g, :] is used, normalised for kind 0).
// Variants (kind): 0 cos-centroid (1 - u.c, c = normalize(mean u)), 1 cos-pairwise (pairs
// 1 - u_i.u_j, sum of u over the group, no stop-gradient), 2 mse-normalized (|u - mean u|^2),
// 3 mse-raw (|h - mean h|^2 / H); targets are stop-gradient. Denominator: the normalizer
// (flags bit 0) or N (rows of contributing groups; kind 1: P, their pairs).
// Five entry points, recorded in this order in one pass:
//   gather   (one workgroup per sequence): reads hidden, anchors, correct; writes scratch rows
//            h, u and rowinfo [norm, takes part, 0, 0] of every sequence.
//   centroid (one workgroup per group): reads groups, cent_in, cent_mask, scratch rows; writes
//            scratch target[g], sum[g] (sum of u) and ginfo [n, contributes, pairs if
//            contributing, pairs].
//   count    (one workgroup): reads ginfo; writes out[1] N, out[2] groups, out[4] 1/denominator
//            (0 when nothing contributes), out[5] pairs of taking-part rows, out[6] P.
//   grad     (one workgroup per sequence with an anchor): writes (flags bit 1: adds) weight ·
//            d loss / d h into d_hidden[b, anchors[b], :] (zeros where b does not take part;
//            no other row is touched: the caller zeroes d_hidden) and rowinfo [.., term, cos].
//   finish   (one workgroup): writes out[0] value = Σ terms / denominator, out[3] mean cosine
//            u_i.u_j over the pairs of taking-part rows of each group (0 without pairs).
// Scratch floats: h rows B·H, u rows B·H, target G·H, sum G·H, rowinfo 4·B, ginfo 4·G.
// Tolerance vs the f64 reference (f32 inputs): value and metrics rel 1e-5; d_hidden rel 1e-5
// (f32 dot products of length H).
struct Params {
  batch: u32, seq_len: u32, hidden: u32, groups: u32,
  kind: u32, flags: u32, normalizer: f32, weight: f32,
}

const WG = 256u;

// Region offsets of the scratch buffer.
fn urows(p: Params) -> u32 { return p.batch * p.hidden; }
fn targets(p: Params) -> u32 { return 2u * p.batch * p.hidden; }
fn sums(p: Params) -> u32 { return (2u * p.batch + p.groups) * p.hidden; }
fn rowinfo(p: Params) -> u32 { return 2u * (p.batch + p.groups) * p.hidden; }
fn ginfo(p: Params) -> u32 { return rowinfo(p) + 4u * p.batch; }

var<workgroup> red: array<f32, 1280>; // up to 5 fields × 256 threads

// Tree-sums red[f·256 + t] over t for fields f < nf; the result is red[f·256].
fn reduce(t: u32, nf: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      for (var f = 0u; f < nf; f++) { red[f * WG + t] += red[f * WG + t + s]; }
    }
    workgroupBarrier();
  }
}

// ---- gather ----------------------------------------------------------------------------------
@group(0) @binding(0) var<storage, read> hid: array<f32>;
@group(0) @binding(1) var<storage, read> anc: array<i32>;
@group(0) @binding(2) var<storage, read> cor: array<u32>;
@group(0) @binding(3) var<storage, read_write> s_ga: array<f32>;
@group(0) @binding(4) var<uniform> p_ga: Params;

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let p = p_ga;
  let b = wg.x + wg.y * 32768u;
  if (b >= p.batch) { return; }
  let H = p.hidden;
  let a = anc[b];
  let take = a >= 0 && cor[b] != 0u;
  let base = (b * p.seq_len + u32(max(a, 0))) * H;
  var ss = 0.0;
  if (take) {
    for (var j = t; j < H; j += WG) { let x = hid[base + j]; ss = fma(x, x, ss); }
  }
  red[t] = ss;
  reduce(t, 1u);
  let norm = sqrt(red[0]);
  let inv = 1.0 / max(norm, 1e-6);
  for (var j = t; j < H; j += WG) {
    let h = select(0.0, hid[base + j], take);
    s_ga[b * H + j] = h;
    s_ga[urows(p) + b * H + j] = h * inv;
  }
  if (t == 0u) {
    let r = rowinfo(p) + 4u * b;
    s_ga[r] = norm;
    s_ga[r + 1u] = select(0.0, 1.0, take);
    s_ga[r + 2u] = 0.0;
    s_ga[r + 3u] = 0.0;
  }
}

// ---- centroid --------------------------------------------------------------------------------
@group(0) @binding(0) var<storage, read> grp: array<u32>;
@group(0) @binding(1) var<storage, read> cin: array<f32>;
@group(0) @binding(2) var<storage, read> cmask: array<u32>;
@group(0) @binding(3) var<storage, read_write> s_ce: array<f32>;
@group(0) @binding(4) var<uniform> p_ce: Params;

@compute @workgroup_size(256)
fn centroid(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let p = p_ce;
  let g = wg.x + wg.y * 32768u;
  if (g >= p.groups) { return; }
  let H = p.hidden;
  let ri = rowinfo(p);
  var c = 0.0;
  for (var b = t; b < p.batch; b += WG) {
    if (grp[b] == g && s_ce[ri + 4u * b + 1u] != 0.0) { c += 1.0; }
  }
  red[t] = c;
  reduce(t, 1u);
  let n = red[0];
  workgroupBarrier();
  let supplied = (p.flags & 4u) != 0u && cmask[g] != 0u;
  let contributes = select(n >= 2.0, n >= 1.0, supplied);
  var sq = 0.0;
  for (var j = t; j < H; j += WG) {
    var su = 0.0;
    var sh = 0.0;
    for (var b = 0u; b < p.batch; b++) {
      if (grp[b] == g && s_ce[ri + 4u * b + 1u] != 0.0) {
        su += s_ce[urows(p) + b * H + j];
        sh += s_ce[b * H + j];
      }
    }
    s_ce[sums(p) + g * H + j] = su;
    let mean_div = max(n, 1.0);
    var tv: f32;
    if (supplied) {
      tv = cin[g * H + j];
    } else if (p.kind == 1u) {
      tv = su;
    } else if (p.kind == 3u) {
      tv = sh / mean_div;
    } else {
      tv = su / mean_div;
    }
    s_ce[targets(p) + g * H + j] = tv;
    sq = fma(tv, tv, sq);
  }
  red[t] = sq;
  reduce(t, 1u);
  if (p.kind == 0u) {
    let scale = 1.0 / max(sqrt(red[0]), 1e-6);
    for (var j = t; j < H; j += WG) { s_ce[targets(p) + g * H + j] *= scale; }
  }
  if (t == 0u) {
    let pairs = n * (n - 1.0) / 2.0;
    let gi = ginfo(p) + 4u * g;
    s_ce[gi] = n;
    s_ce[gi + 1u] = select(0.0, 1.0, contributes);
    s_ce[gi + 2u] = select(0.0, pairs, contributes);
    s_ce[gi + 3u] = pairs;
  }
}

// ---- count -----------------------------------------------------------------------------------
@group(0) @binding(0) var<storage, read> s_co: array<f32>;
@group(0) @binding(1) var<storage, read_write> o_co: array<f32>;
@group(0) @binding(2) var<uniform> p_co: Params;

@compute @workgroup_size(256)
fn count(@builtin(local_invocation_index) t: u32) {
  let p = p_co;
  // Fields: 0 N, 1 contributing groups, 2 P, 3 pairs of taking-part rows.
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var g = t; g < p.groups; g += WG) {
    let gi = ginfo(p) + 4u * g;
    let on = s_co[gi + 1u];
    acc[0] += on * s_co[gi];
    acc[1] += on;
    acc[2] += s_co[gi + 2u];
    acc[3] += s_co[gi + 3u];
  }
  for (var f = 0u; f < 4u; f++) { red[f * WG + t] = acc[f]; }
  reduce(t, 4u);
  if (t == 0u) {
    let n = red[0];
    let pairs = red[2u * WG];
    let cnt = select(n, pairs, p.kind == 1u);
    let denom = select(cnt, p.normalizer, (p.flags & 1u) != 0u);
    o_co[1] = n;
    o_co[2] = red[WG];
    o_co[4] = select(0.0, 1.0 / denom, cnt > 0.0 && denom > 0.0);
    o_co[5] = red[3u * WG];
    o_co[6] = pairs;
    o_co[7] = 0.0;
  }
}

// ---- grad ------------------------------------------------------------------------------------
@group(0) @binding(0) var<storage, read> anc_g: array<i32>;
@group(0) @binding(1) var<storage, read> grp_g: array<u32>;
@group(0) @binding(2) var<storage, read_write> s_gr: array<f32>;
@group(0) @binding(3) var<storage, read> o_gr: array<f32>;
@group(0) @binding(4) var<storage, read_write> dh: array<f32>;
@group(0) @binding(5) var<uniform> p_gr: Params;

@compute @workgroup_size(256)
fn grad(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let p = p_gr;
  let b = wg.x + wg.y * 32768u;
  if (b >= p.batch) { return; }
  let a = anc_g[b];
  if (a < 0) { return; }
  let H = p.hidden;
  let ri = rowinfo(p) + 4u * b;
  let take = s_gr[ri + 1u] != 0.0;
  let g = grp_g[b];
  let gi = ginfo(p) + 4u * g;
  let n = s_gr[gi];
  let inv = o_gr[4];
  let part = take && s_gr[gi + 1u] != 0.0 && inv > 0.0;
  let hb = b * H;
  let ub = urows(p) + b * H;
  let tb = targets(p) + g * H;
  let sb = sums(p) + g * H;
  // Fields: 0 u.target, 1 u.sum, 2 u.u, 3 |u - target|^2, 4 |h - target|^2.
  var acc = array<f32, 5>(0.0, 0.0, 0.0, 0.0, 0.0);
  if (take) {
    for (var j = t; j < H; j += WG) {
      let u = s_gr[ub + j];
      let h = s_gr[hb + j];
      let tv = s_gr[tb + j];
      acc[0] = fma(u, tv, acc[0]);
      acc[1] = fma(u, s_gr[sb + j], acc[1]);
      acc[2] = fma(u, u, acc[2]);
      acc[3] += (u - tv) * (u - tv);
      acc[4] += (h - tv) * (h - tv);
    }
  }
  for (var f = 0u; f < 5u; f++) { red[f * WG + t] = acc[f]; }
  reduce(t, 5u);
  let ut = red[0];
  let us = red[WG];
  let uu = red[2u * WG];
  var term = 0.0;
  var gdotu = 0.0;
  switch p.kind {
    case 0u: { term = 1.0 - ut; gdotu = -inv * ut; }
    case 1u: { term = 0.5 * ((n - 1.0) - (us - uu)); gdotu = -inv * (us - uu); }
    case 2u: { term = red[3u * WG]; gdotu = 2.0 * inv * (uu - ut); }
    default: { term = red[4u * WG] / f32(H); }
  }
  let norm = s_gr[ri];
  let out_base = (b * p.seq_len + u32(a)) * H;
  let add = (p.flags & 2u) != 0u;
  for (var j = t; j < H; j += WG) {
    var gh = 0.0;
    if (part) {
      let u = s_gr[ub + j];
      let tv = s_gr[tb + j];
      var gu: f32;
      switch p.kind {
        case 0u: { gu = -inv * tv; }
        case 1u: { gu = -inv * (s_gr[sb + j] - u); }
        default: { gu = 2.0 * inv * (u - tv); }
      }
      if (p.kind == 3u) {
        gh = 2.0 * inv * (s_gr[hb + j] - tv) / f32(H);
      } else if (norm > 1e-6) {
        gh = (gu - gdotu * u) / norm;
      } else {
        gh = gu / 1e-6;
      }
      gh *= p.weight;
    }
    if (add) { dh[out_base + j] += gh; } else { dh[out_base + j] = gh; }
  }
  if (t == 0u) {
    s_gr[ri + 2u] = select(0.0, term, part);
    s_gr[ri + 3u] = select(0.0, us - uu, take);
  }
}

// ---- finish ----------------------------------------------------------------------------------
@group(0) @binding(0) var<storage, read> s_fi: array<f32>;
@group(0) @binding(1) var<storage, read_write> o_fi: array<f32>;
@group(0) @binding(2) var<uniform> p_fi: Params;

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) t: u32) {
  let p = p_fi;
  var terms = 0.0;
  var cos = 0.0;
  for (var b = t; b < p.batch; b += WG) {
    terms += s_fi[rowinfo(p) + 4u * b + 2u];
    cos += s_fi[rowinfo(p) + 4u * b + 3u];
  }
  red[t] = terms;
  red[WG + t] = cos;
  reduce(t, 2u);
  if (t == 0u) {
    o_fi[0] = red[0] * o_fi[4];
    let pairs = o_fi[5];
    o_fi[3] = select(0.0, 0.5 * red[WG] / pairs, pairs > 0.0);
  }
}
