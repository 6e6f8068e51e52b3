// hilo_gate_backward: one expert's share of the HILO branch backward, per token t < m, with
// u[t·r + j] = (x·A_eᵀ)[t, j], du[t·r + j] = scale·(dy·B_e)[t, j] and the gates
// g[t, e] = u[gate_offset + t·E + expert]:
//   du[dg_offset + t·E + expert] = Σ_j du[t·r + j]·u[t·r + j]   (d loss / d g_e)
//   du[t·r + j] *= g[t, e]                                        (the expert's d loss / d (x·A_eᵀ))
//   u[t·r + j]  *= g[t, e]                                        (for dB_e = scale·dyᵀ·(g ⊙ u))
// One thread per token, 64 a workgroup; index = (wg.x + wg.y·GRID_X)·64 + local. Reads and writes
// u and du (one read_write binding each; the rows and gate areas must not overlap). Tolerance vs
// the f64 reference: rel 1e-6 on dg (an f32 dot product of r terms), 1e-7 on the gated rows.
struct Params { m: u32, r: u32, experts: u32, expert: u32, gate_offset: u32, dg_offset: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read_write> u: array<f32>;
@group(0) @binding(1) var<storage, read_write> du: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wg.x + wg.y * GRID_X) * 64u + li;
  if (t >= p.m) { return; }
  let g = u[p.gate_offset + t * p.experts + p.expert];
  var dot = 0.0;
  for (var j = 0u; j < p.r; j++) {
    let i = t * p.r + j;
    dot += du[i] * u[i];
    du[i] = du[i] * g;
    u[i] = u[i] * g;
  }
  du[p.dg_offset + t * p.experts + p.expert] = dot;
}
