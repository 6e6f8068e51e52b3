// matmul_split_k: the second pass of split-K (kernels/matmul/_dispatch.ts). The first pass,
// matmul.wgsl with k_chunk > 0, wrote S partial products, part[s, m, n] = sum over the k of
// chunk s of A[m, k] * B[n, k], as S blocks of [M, N] (rows of N). This pass sums them in s order
// and writes the product as the other matmul kernels do:
//   y[m, y_col + n] = (accumulate ? y[m, y_col + n] : 0) + alpha * sum_s part[s, m, n]
// One thread per output, flat over M * N (grid [min(wgs, 65535), ceil(wgs / 65535)] of 256).
// Reads part (every element it sums was written by the first pass: no stale value leaks) and y
// when accumulating; writes y. The only loop is the one over S (<= 64).
struct Params {
  M: u32, N: u32, splits: u32, ldy: u32,
  y_col: u32, accumulate: u32, alpha: f32,
}
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.y * nwg.x * 256u + gid.x;
  let mn = p.M * p.N;
  if (i >= mn) { return; }
  var sum = part[i];
  for (var s = 1u; s < p.splits; s++) { sum += part[s * mn + i]; }
  let idx = (i / p.N) * p.ldy + p.y_col + i % p.N;
  var out = p.alpha * sum;
  if (p.accumulate != 0u) { out += y[idx]; }
  y[idx] = out;
}
