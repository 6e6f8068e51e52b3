// matvec_prologue: the input prologues of matvec_vec4.wgsl, spliced in by kernels/matvec/matvec.ts
// in place of the base kernel's "prologue" block (its K loop and x load) and uniform binding; the
// grid, K split, per-thread sums (same fma order: y is bit-identical to the base kernel's on the
// same x) and stores are the base kernel's. The x operand [M, K] (contiguous, K = 4·K4) is
// computed from the prologue's operands instead of read: the K loop runs in chunks of CH = 512 / MB
// vec4 steps (override); per chunk the workgroup's 64 threads compute the chunk's vec4s of its MB
// rows into shared memory (`part` [MB][CH], free until the K split's reduction), a barrier, the
// chunk's steps read x from there, a barrier (omitted after the last chunk when TK = 1): each x
// element is computed once per workgroup, not once per column group. The workgroups of column
// block 0 also write the computed x to xo (when write_x != 0) for the dispatches that read it next
// (LoRA A, HILO routers, the sibling projections):
// - PROLOGUE = 0, RMSNorm: x binds the raw rows h, aux the norm weight g [K];
//   x[m, k] = h[m, k] · rsqrt(mean_k h[m, k]² + eps) · g[k]. Every workgroup first sums its rows'
//   squares as rms_norm.wgsl does (thread t: k = t, t + 64, ... with one fma each; then, after one
//   barrier, each thread adds the 64 partials in that kernel's tree order), so x (and xo) are
//   bit-identical to its output.
// - PROLOGUE = 1, SwiGLU: x binds gate, aux up [M, K], rows 4·ldx4 floats apart (the launcher's
//   default ldx4 = K4: contiguous; a fused gate|up output [M, 2K] is bound twice with ldx4 = 2 K4);
//   x = gate / (1 + exp(-gate)) · up, the expression of swiglu.wgsl, so xo is its output.
// The loops: over K's chunks and their steps (K4 in all), over the 64 partials (fixed).
// Reads x, aux, w (and y when accumulating); writes y and xo, which must alias none of them.
// Tolerance vs the f64 reference: as matvec_vec4 (rel 1e-5, f32); bit-identical to rms_norm /
// swiglu followed by matvec_vec4 (kernels/matvec/matvec_prologue_test.ts).
override PROLOGUE: u32 = 0u;

@group(0) @binding(3) var<storage, read> aux: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> xo: array<vec4f>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> squares: array<f32, 512>; // [MB][64] partial sums of squares (RMSNorm)
var<private> inv_rms: array<f32, 8>; // RMSNorm: 1 / rms of row m0 + i

// Vec4 steps per chunk (the launcher sets it to 512 / MB).
override CH: u32 = 64u;

fn k_loop(block: u32, t: u32, m0: u32, r: vec4u) {
  if (PROLOGUE == 0u) { sum_squares(t, m0); }
  let writes = p.write_x != 0u && block == 0u;
  for (var c = 0u; c < p.K4; c += CH) {
    let end = min(c + CH, p.K4);
    for (var k4 = c + t; k4 < end; k4 += 64u) {
      for (var i = 0u; i < MB; i++) { stage_x(i, m0, k4, writes); }
    }
    workgroupBarrier();
    for (var k4 = c + t % TK; k4 < end; k4 += TK) { k_step(m0, k4, r); }
    // Before the next chunk's staging, or the K split's reduction, overwrites part.
    if (end < p.K4 || TK > 1u) { workgroupBarrier(); }
  }
}

// part[i, k4 % CH] = x[m0 + i, 4 k4 .. 4 k4 + 3] (rows past M: the last one, not written to xo).
fn stage_x(i: u32, m0: u32, k4: u32, writes: bool) {
  let at = min(m0 + i, p.M - 1u) * p.K4 + k4;
  var v: vec4f;
  if (PROLOGUE == 0u) {
    v = x[at] * inv_rms[i] * aux[k4];
  } else {
    let src = min(m0 + i, p.M - 1u) * p.ldx4 + k4;
    let g = x[src];
    v = g / (1.0 + exp(-g)) * aux[src];
  }
  part[i * CH + k4 % CH] = v;
  if (writes && m0 + i < p.M) { xo[at] = v; }
}

fn load_x(i: u32, m0: u32, k4: u32) -> vec4f {
  return part[i * CH + k4 % CH];
}

// RMSNorm: inv_rms[i] = 1 / rms of row m0 + i, summed as rms_norm.wgsl does.
fn sum_squares(t: u32, m0: u32) {
  let K = 4u * p.K4;
  for (var i = 0u; i < MB; i++) {
    let base = min(m0 + i, p.M - 1u) * p.K4;
    var s = 0.0;
    for (var k = t; k < K; k += 64u) {
      let v = x[base + k / 4u][k % 4u];
      s = fma(v, v, s);
    }
    squares[i * 64u + t] = s;
  }
  workgroupBarrier();
  // Every thread adds the 64 partials in rms_norm.wgsl's tree order (partial[j] += partial[j + h]
  // for h = 32, 16, ..., 1): one barrier instead of seven.
  for (var i = 0u; i < MB; i++) {
    var q: array<f32, 32>;
    for (var j = 0u; j < 32u; j++) { q[j] = squares[i * 64u + j] + squares[i * 64u + j + 32u]; }
    for (var h = 16u; h > 0u; h >>= 1u) {
      for (var j = 0u; j < h; j++) { q[j] += q[j + h]; }
    }
    inv_rms[i] = inverseSqrt(q[0] / f32(K) + p.eps);
  }
}
