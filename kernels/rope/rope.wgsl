// rope: rotary position embedding in place, HF rotate-half convention. x is [rows, D] with
// rows = tokens * heads (token = row / heads); for i < D/2, with c, s = table[pos, i]:
//   x[i] <- x[i] * c - x[i + D/2] * s,   x[i + D/2] <- x[i + D/2] * c + x[i] * s.
// table is [max_pos, D/2, 2] (cos, sin) computed in f64 on the CPU; pos = positions[token].
// Variant SIGN = -1 rotates by minus the angle: the backward (the gradient of a rotation is the
// inverse rotation of the output gradient), launched by rope_backward.ts.
// 256 threads a workgroup, one per (row, i). Reads positions, table; reads and writes x.
// Tolerance vs f64 reference: rel 1e-6 (one f32 rotation).
struct Params { rows: u32, D: u32, heads: u32, max_pos: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
override SIGN: f32 = 1.0;
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let half = p.D / 2u;
  let idx = (wg.x + wg.y * GRID_X) * 256u + t;
  if (idx >= p.rows * half) { return; }
  let row = idx / half;
  let i = idx % half;
  let pos = min(positions[row / p.heads], p.max_pos - 1u);
  let c = table[(pos * half + i) * 2u];
  let s = SIGN * table[(pos * half + i) * 2u + 1u];
  let a = row * p.D + i;
  let x1 = x[a];
  let x2 = x[a + half];
  x[a] = x1 * c - x2 * s;
  x[a + half] = x2 * c + x1 * s;
}
