// rms_norm_backward: gradients of y = x * r * w with r = 1 / sqrt(mean(x^2) + eps) over rows of D:
//   dx[row, i] = (accumulate_dx ? dx[row, i] : 0) + r * w[i] * dy[row, i] - x[row, i] * r^3 * c / D,
//   c = sum_i dy[row, i] * w[i] * x[row, i];
//   dw[i] = (accumulate_dw ? dw[i] : 0) + sum_row dy[row, i] * x[row, i] * r_row.
// Entry points (each declares its own bindings, so binding numbers overlap between them):
//   dx_only    one workgroup of 64 threads per row (row = wg.x + wg.y * GRID_X): dx.
//   main       the same, and saves r per row in rstd for the dw passes.
//   dw_partial grid (ceil(D / 64), ceil(R / 256)): partial[block, i] = sum over the block's 256
//              rows; one thread per column, rows in order.
//   dw_reduce  one thread per column: dw[i] (+)= sum_block partial[block, i], blocks in order.
// No atomics: results are deterministic. dx must not alias dy or x.
// Tolerance vs f64 reference: rel 1e-5 (f32 sums over a row of D and over 256-row blocks).
struct Params { R: u32, D: u32, eps: f32, accumulate_dx: u32, accumulate_dw: u32, blocks: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;

const BLOCK_ROWS = 256u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> p4: Params;

var<workgroup> partial: array<vec2f, 64>;

// Writes dx of one row (all 64 threads); returns r of the row.
fn row_dx(row: u32, t: u32, prm: Params) -> f32 {
  let base = row * prm.D;
  var s = vec2f(0.0);
  for (var i = t; i < prm.D; i += 64u) {
    let xv = x[base + i];
    s += vec2f(xv * xv, dy[base + i] * w[i] * xv);
  }
  partial[t] = s;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (t < stride) { partial[t] += partial[t + stride]; }
    workgroupBarrier();
  }
  let r = inverseSqrt(partial[0].x / f32(prm.D) + prm.eps);
  let c = r * r * r * partial[0].y / f32(prm.D);
  for (var i = t; i < prm.D; i += 64u) {
    var g = r * w[i] * dy[base + i] - x[base + i] * c;
    if (prm.accumulate_dx != 0u) { g += dx[base + i]; }
    dx[base + i] = g;
  }
  return r;
}

@compute @workgroup_size(64)
fn dx_only(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wg.x + wg.y * GRID_X;
  if (row >= p4.R) { return; }
  _ = row_dx(row, t, p4);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wg.x + wg.y * GRID_X;
  if (row >= p.R) { return; }
  let r = row_dx(row, t, p);
  if (t == 0u) { rstd[row] = r; }
}

@group(0) @binding(2) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<uniform> pp: Params;

@compute @workgroup_size(64)
fn dw_partial(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let col = wg.x * 64u + t;
  if (col >= pp.D) { return; }
  let r0 = wg.y * BLOCK_ROWS;
  let r1 = min(pp.R, r0 + BLOCK_ROWS);
  var s = 0.0;
  for (var row = r0; row < r1; row++) {
    let idx = row * pp.D + col;
    s = fma(dy[idx] * x[idx], rstd_in[row], s);
  }
  partials[wg.y * pp.D + col] = s;
}

@group(0) @binding(0) var<storage, read> partials_in: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<uniform> pr: Params;

@compute @workgroup_size(64)
fn dw_reduce(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let col = wg.x * 64u + t;
  if (col >= pr.D) { return; }
  var s = 0.0;
  for (var b = 0u; b < pr.blocks; b++) { s += partials_in[b * pr.D + col]; }
  if (pr.accumulate_dw != 0u) { s += dw[col]; }
  dw[col] = s;
}
