// attention_backward: gradients of causal grouped-query attention with a key mask (attention.wgsl).
// Layout as the forward: q, d_o, dq [B, Tq, Hq, D]; k, v, dk, dv [B, S, Hkv, D]; mask [B, S] (u32).
// Query i (position q_start + i) sees slot j when j <= q_start + i, j < kv_len and mask[b, j] != 0.
// With s_j = scale * q·k_j, P_j = exp(s_j - lse), dP_j = d_o·v_j and delta = sum_j P_j dP_j:
//   dq = scale * sum_j P_j (dP_j - delta) k_j,
//   dk_j = scale * sum_(i, h in j's group) P_ij (dP_ij - delta_ih) q_ih,   dv_j = sum P_ij d_o_ih.
// Two entry points, recorded in this order (their bindings overlap in number):
//   main  one workgroup of 64 threads per (b, i, h): pass 1 over the keys (chunks of 64, one key a
//         thread) recomputes lse and delta with an online softmax; pass 2 accumulates dq (each
//         thread owns d = t, t + 64, ...). Writes dq and stats[(b, i, h)] = (lse, delta).
//   dkv   one workgroup of 64 threads per (b, j, kv head): loops over the (query, head) pairs that
//         see slot j in chunks of 64, reading stats; writes dk, dv (zero for slots nobody sees).
// No atomics: the GQA sums run in a fixed order, so results are deterministic. D <= 256.
// A query that sees no key gets dq = 0 and stats (-3e38, 0). Head sizes <= 128 that are a
// multiple of 4 get the tiled attention_backward_flash.wgsl instead (attention_backward.ts picks).
// Tolerance vs f64 reference: rel 1e-5 (f32 online softmax and sums of a few hundred terms).
struct Params {
  B: u32, Tq: u32, S: u32, kv_len: u32,
  q_start: u32, Hq: u32, Hkv: u32, D: u32,
  scale: f32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read> d_o: array<f32>;

const NEG_INF = -3.0e38;

var<workgroup> va: array<f32, 256>; // main: the query; dkv: the key
var<workgroup> vb: array<f32, 256>; // main: its output gradient; dkv: the value
var<workgroup> c_a: array<f32, 64>;
var<workgroup> c_b: array<f32, 64>;
var<workgroup> c_row: array<u32, 64>;

@group(0) @binding(5) var<storage, read_write> dq: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

// (scale * va·k[kb..], vb·v[kb..]) for the slot at offset kb.
fn scores_of(kb: u32) -> vec2f {
  var s = 0.0;
  var dp = 0.0;
  for (var d = 0u; d < p.D; d++) {
    s = fma(va[d], k[kb + d], s);
    dp = fma(vb[d], v[kb + d], dp);
  }
  return vec2f(s * p.scale, dp);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let item = wg.x + wg.y * GRID_X;
  if (item >= p.B * p.Tq * p.Hq) { return; }
  let h = item % p.Hq;
  let i = (item / p.Hq) % p.Tq;
  let b = item / (p.Hq * p.Tq);
  let hk = h / (p.Hq / p.Hkv);
  let q_base = item * p.D;
  for (var d = t; d < p.D; d += 64u) {
    va[d] = q[q_base + d];
    vb[d] = d_o[q_base + d];
  }
  workgroupBarrier();

  let end = min(p.kv_len, p.q_start + i + 1u);
  let kv_stride = p.Hkv * p.D;
  let kv_base = b * p.S * kv_stride + hk * p.D;
  // Pass 1: m = running max, l = sum exp(s - m), a = sum exp(s - m) dP.
  var m = NEG_INF;
  var l = 0.0;
  var a = 0.0;
  for (var j0 = 0u; j0 < end; j0 += 64u) {
    let j = j0 + t;
    var sd = vec2f(NEG_INF, 0.0);
    if (j < end && mask[b * p.S + j] != 0u) { sd = scores_of(kv_base + j * kv_stride); }
    c_a[t] = sd.x;
    c_b[t] = sd.y;
    workgroupBarrier();
    var cm = NEG_INF;
    for (var u = 0u; u < 64u; u++) { cm = max(cm, c_a[u]); }
    let m_new = max(m, cm);
    if (m_new > NEG_INF) {
      let corr = exp(m - m_new);
      l *= corr;
      a *= corr;
      for (var u = 0u; u < 64u; u++) {
        if (c_a[u] > NEG_INF) {
          let e = exp(c_a[u] - m_new);
          l += e;
          a = fma(e, c_b[u], a);
        }
      }
      m = m_new;
    }
    workgroupBarrier();
  }
  var lse = NEG_INF;
  var delta = 0.0;
  if (l > 0.0) {
    lse = m + log(l);
    delta = a / l;
  }
  // Pass 2: dq = scale * sum_j P_j (dP_j - delta) k_j.
  // (With no visible key no slot passes the test below, so dq stays 0.)
  var acc = vec4f(0.0);
  for (var j0 = 0u; j0 < end; j0 += 64u) {
    let j = j0 + t;
    var ds = 0.0;
    if (j < end && mask[b * p.S + j] != 0u) {
      let sd = scores_of(kv_base + j * kv_stride);
      ds = exp(sd.x - lse) * (sd.y - delta) * p.scale;
    }
    c_a[t] = ds;
    workgroupBarrier();
    let n = min(64u, end - j0);
    for (var u = 0u; u < n; u++) {
      let du = c_a[u];
      if (du != 0.0) {
        let kb = kv_base + (j0 + u) * kv_stride;
        for (var c = 0u; c < 4u; c++) {
          let d = t + c * 64u;
          if (d < p.D) { acc[c] = fma(du, k[kb + d], acc[c]); }
        }
      }
    }
    workgroupBarrier();
  }
  for (var c = 0u; c < 4u; c++) {
    let d = t + c * 64u;
    if (d < p.D) { dq[q_base + d] = acc[c]; }
  }
  if (t == 0u) {
    stats[item * 2u] = lse;
    stats[item * 2u + 1u] = delta;
  }
}

@group(0) @binding(5) var<storage, read> stats_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
@group(0) @binding(8) var<uniform> p8: Params;

@compute @workgroup_size(64)
fn dkv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let item = wg.x + wg.y * GRID_X;
  if (item >= p8.B * p8.S * p8.Hkv) { return; }
  let hk = item % p8.Hkv;
  let j = (item / p8.Hkv) % p8.S;
  let b = item / (p8.Hkv * p8.S);
  let group = p8.Hq / p8.Hkv;
  let kv_base = item * p8.D;
  for (var d = t; d < p8.D; d += 64u) {
    va[d] = k[kv_base + d];
    vb[d] = v[kv_base + d];
  }
  workgroupBarrier();
  // Queries i >= j - q_start see slot j (causality); every head of the group reads it.
  let i0 = select(0u, j - p8.q_start, j > p8.q_start);
  var count = 0u;
  if (j < p8.kv_len && i0 < p8.Tq) { count = (p8.Tq - i0) * group; }
  var acc_k = vec4f(0.0);
  var acc_v = vec4f(0.0);
  for (var e0 = 0u; e0 < count; e0 += 64u) {
    let e = e0 + t;
    var pr = 0.0;
    var ds = 0.0;
    var row = 0u;
    if (e < count && mask[b * p8.S + j] != 0u) {
      let i = i0 + e / group;
      let h = hk * group + e % group;
      row = (b * p8.Tq + i) * p8.Hq + h;
      let lse = stats_in[row * 2u];
      if (lse > NEG_INF) {
        let qb = row * p8.D;
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < p8.D; d++) {
          s = fma(q[qb + d], va[d], s);
          dp = fma(d_o[qb + d], vb[d], dp);
        }
        pr = exp(s * p8.scale - lse);
        ds = pr * (dp - stats_in[row * 2u + 1u]) * p8.scale;
      }
    }
    c_a[t] = pr;
    c_b[t] = ds;
    c_row[t] = row;
    workgroupBarrier();
    let n = min(64u, count - e0);
    for (var u = 0u; u < n; u++) {
      let pu = c_a[u];
      let du = c_b[u];
      if (pu != 0.0 || du != 0.0) {
        let rb = c_row[u] * p8.D;
        for (var c = 0u; c < 4u; c++) {
          let d = t + c * 64u;
          if (d < p8.D) {
            acc_k[c] = fma(du, q[rb + d], acc_k[c]);
            acc_v[c] = fma(pu, d_o[rb + d], acc_v[c]);
          }
        }
      }
    }
    workgroupBarrier();
  }
  for (var c = 0u; c < 4u; c++) {
    let d = t + c * 64u;
    if (d < p8.D) {
      dk[kv_base + d] = acc_k[c];
      dv[kv_base + d] = acc_v[c];
    }
  }
}
