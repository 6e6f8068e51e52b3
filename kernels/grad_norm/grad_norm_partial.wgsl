// grad_norm_partial: stage 1 of the global gradient norm. For one gradient buffer of n floats,
// workgroup w (of p.wgs, 256 threads each) writes partials[p.offset + w] = Σ x[i]² over
// i = w·256 + t + k·(p.wgs·256): each thread sums its strided elements in a fixed order, then a
// fixed shared-memory tree adds the 256 sums. The geometry depends only on n, so the result is
// bit-for-bit deterministic. Reads x; writes partials[p.offset .. p.offset + p.wgs).
// Tolerance of the final norm vs f64 reference: rel 1e-5 (f32 sums of positive terms).
struct Params { n: u32, offset: u32, wgs: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let stride = p.wgs * 256u;
  var s = 0.0;
  for (var i = wg.x * 256u + t; i < p.n; i += stride) {
    let g = x[i];
    s = fma(g, g, s);
  }
  red[t] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (t < k) { red[t] += red[t + k]; }
    workgroupBarrier();
  }
  if (t == 0u) { partials[p.offset + wg.x] = red[0]; }
}
