// attention_rows: the online softmax of one query over its visible slots [begin, end), shared by
// attention.wgsl and attention_split.wgsl (entry main of each), which attention.ts appends it to.
// One workgroup of 64 threads: per block of 64 keys each thread scores one key against the query
// in qs, the block's maximum rescales the running sum l and outputs, then every thread folds the
// block's values into the outputs d = t, t + 64, t + 128, t + 192 it owns (acc). Uses the
// including kernel's k, v (through load_k / load_v of _kv_load.wgsl, appended too), mask, p (S,
// Hkv, D, scale), workgroup arrays qs and scores[64], and NEG_INF; the call must be in uniform
// control flow (it has barriers).
struct RowSoftmax { m: f32, l: f32, acc: vec4f }

fn attend_row(b: u32, hk: u32, begin: u32, end: u32, t: u32) -> RowSoftmax {
  let kv_stride = p.Hkv * p.D;
  let kv_base = b * p.S * kv_stride + hk * p.D;
  var m = NEG_INF;
  var l = 0.0;
  var acc = vec4f(0.0);
  for (var j0 = begin; j0 < end; j0 += 64u) {
    let j = j0 + t;
    var s = NEG_INF;
    if (j < end && mask[b * p.S + j] != 0u) {
      let kb = kv_base + j * kv_stride;
      var dot = 0.0;
      if (KV_F16) {
        // One word, two keys' values, a load (D even); the same sum in the same order.
        for (var d = 0u; d < p.D; d += 2u) {
          let kk = load_k2(kb + d);
          dot = fma(qs[d + 1u], kk.y, fma(qs[d], kk.x, dot));
        }
      } else {
        for (var d = 0u; d < p.D; d++) { dot = fma(qs[d], load_k(kb + d), dot); }
      }
      s = dot * p.scale;
    }
    scores[t] = s;
    workgroupBarrier();
    var cm = NEG_INF;
    for (var u = 0u; u < 64u; u++) { cm = max(cm, scores[u]); }
    let m_new = max(m, cm);
    if (m_new > NEG_INF) {
      let corr = exp(m - m_new);
      l *= corr;
      acc *= corr;
      let n = min(64u, end - j0);
      for (var u = 0u; u < n; u++) {
        let su = scores[u];
        if (su > NEG_INF) {
          let pu = exp(su - m_new);
          l += pu;
          let vb = kv_base + (j0 + u) * kv_stride;
          for (var c = 0u; c < 4u; c++) {
            let d = t + c * 64u;
            if (d < p.D) { acc[c] = fma(pu, load_v(vb + d), acc[c]); }
          }
        }
      }
      m = m_new;
    }
    workgroupBarrier();
  }
  return RowSoftmax(m, l, acc);
}
