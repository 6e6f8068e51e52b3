// rope_backward: gradient of the rotary embedding (rope.wgsl), in place. The forward rotates each
// pair (x[i], x[i + D/2]) by the angle of (pos, i), so the gradient is rotated by minus that angle:
//   g[i] <- g[i] * c + g[i + D/2] * s,   g[i + D/2] <- g[i + D/2] * c - g[i] * s,
// with c, s = table[pos, i] (the forward's [max_pos, D/2, 2] table) and pos = positions[row / heads].
// 256 threads a workgroup, one per (row, i). Reads positions, table; reads and writes g.
// Tolerance vs f64 reference: rel 1e-6 (one f32 rotation).
struct Params { rows: u32, D: u32, heads: u32, max_pos: u32 }
@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let half = p.D / 2u;
  let idx = (wg.x + wg.y * 32768u) * 256u + t;
  if (idx >= p.rows * half) { return; }
  let row = idx / half;
  let i = idx % half;
  let pos = min(positions[row / p.heads], p.max_pos - 1u);
  let c = table[(pos * half + i) * 2u];
  let s = table[(pos * half + i) * 2u + 1u];
  let a = row * p.D + i;
  let g1 = g[a];
  let g2 = g[a + half];
  g[a] = g1 * c + g2 * s;
  g[a + half] = g2 * c - g1 * s;
}
