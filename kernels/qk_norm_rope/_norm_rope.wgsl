// _norm_rope.wgsl: code shared by the per-head RMSNorm + RoPE kernels of this folder, not a kernel
// itself. WGSL has no includes: the launchers append this text to each kernel's source
// (withNormRope in _shape.ts). The kernel declares `table` (the RoPE table [max_pos, D/2, 2]) and
// `partial` (a workgroup array of 64 f32 or vec2f); _qk_rows.wgsl adds the q/k row helpers.

// Threads per row and rows per workgroup (TPR * RPW = 64, the workgroup size).
const TPR = 16u;
const RPW = 4u;

// (cos, sin) of rotation pair i at position pos.
fn rope_cs(pos: u32, half: u32, i: u32) -> vec2f {
  return vec2f(table[(pos * half + i) * 2u], table[(pos * half + i) * 2u + 1u]);
}

// RoPE backward of one pair: the output gradient g = (g[i], g[i + D/2]) rotated back by cs.
fn unrotate(g: vec2f, cs: vec2f) -> vec2f {
  return vec2f(g.x * cs.x + g.y * cs.y, g.y * cs.x - g.x * cs.y);
}

// Sums partial[] over each row's TPR threads, tree order, into the slot of the row's first thread
// (partial[t - lane]). Has barriers: call from uniform control flow, every thread's value stored.
fn reduce_rows(t: u32, lane: u32) {
  workgroupBarrier();
  for (var stride = TPR / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) { partial[t] += partial[t + stride]; }
    workgroupBarrier();
  }
}
