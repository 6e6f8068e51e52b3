// hilo_grouped_backward_rows: the per-token part of one routed expert's backward, on the tokens
// of its list only (the grouped dispatch's backward). For the j-th token t of expert e's list:
//   u = x[t]·Aᵀ, du = scale·dy[t]·B,
//   dg[t, e] = Σ_c du_c·u_c                          → du_buf[gate_offset + t·E + e]
//   u_buf[t·r + c] = g[t, e]·u_c, du_buf[t·r + c] = g[t, e]·du_c   (the gated rows)
// with x [m, in], A [r, in], B [out, r], dy [m, out]; g and the index (hilo_grouped_index) read
// from u_buf. Rows of tokens outside the list are not written (the later kernels gather through
// the list). Workgroup w takes list entries [w·TM, w·TM + TM) (TM = 16) and exits past the
// expert's count; both products go through shared tiles of KT = 32 (r ≤ MAX_R = 64; tile_dots
// and x_times_at in _hilo_rows.wgsl, which the launcher appends). Reads x, A, B, dy; reads and
// writes u_buf and du_buf. Tolerance vs the f64 reference: rel 1e-5 at widths
// ≤ 64 (f32 dot products).
struct Params {
  in_f: u32,
  out_f: u32,
  r: u32,
  experts: u32,
  expert: u32,
  gate_offset: u32,
  index_offset: u32,
  scale: f32,
}
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
const TM: u32 = 16u;
const KT: u32 = 32u;
// Outputs per thread: TM · MAX_R / 64 (MAX_R = 64).
const PER: u32 = 16u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> u_buf: array<f32>;
@group(0) @binding(5) var<storage, read_write> du_buf: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
var<workgroup> us: array<f32, 1024>; // TM · MAX_R
var<workgroup> dus: array<f32, 1024>; // TM · MAX_R
var<workgroup> count: u32;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wg.x + wg.y * GRID_X;
  let E = p.experts;
  let r = p.r;
  if (li == 0u) { count = u32(u_buf[p.index_offset + p.expert]); }
  let cnt = workgroupUniformLoad(&count);
  let row0 = w * TM;
  if (row0 >= cnt) { return; }
  let rows = min(TM, cnt - row0);
  if (li < TM) {
    let off = u32(u_buf[p.index_offset + E + p.expert]);
    tok[li] = select(0u, u32(u_buf[p.index_offset + 2u * E + off + row0 + li]), li < rows);
  }
  workgroupBarrier();
  // u = x·Aᵀ
  x_times_at(li, rows, r);
  for (var q = 0u; q < PER; q++) {
    let o = li + 64u * q;
    if (o < TM * r) { us[o] = acc[q]; }
  }
  // du = scale·dy·B (B [out, r]: column c of the tile is B[n, c] for n in the chunk)
  zero_acc();
  for (var n0 = 0u; n0 < p.out_f; n0 += KT) {
    for (var i = li; i < TM * KT; i += 64u) {
      let row = i / KT;
      let n = n0 + i % KT;
      ls[i] = select(0.0, dy[tok[row] * p.out_f + n], row < rows && n < p.out_f);
    }
    for (var i = li; i < r * KT; i += 64u) {
      let n = n0 + i % KT;
      ws[i] = select(0.0, b[n * r + i / KT], n < p.out_f);
    }
    workgroupBarrier();
    tile_dots(li, r);
    workgroupBarrier();
  }
  for (var q = 0u; q < PER; q++) {
    let o = li + 64u * q;
    if (o < TM * r) { dus[o] = acc[q] * p.scale; }
  }
  workgroupBarrier();
  if (li < rows) {
    let t = tok[li];
    var dg = 0.0;
    for (var c = 0u; c < r; c++) { dg += dus[li * r + c] * us[li * r + c]; }
    du_buf[p.gate_offset + t * E + p.expert] = dg;
  }
  for (var o = li; o < rows * r; o += 64u) {
    let row = o / r;
    let t = tok[row];
    let g = u_buf[p.gate_offset + t * E + p.expert];
    u_buf[t * r + o % r] = g * us[o];
    du_buf[t * r + o % r] = g * dus[o];
  }
}
