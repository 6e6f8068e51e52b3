// decode_advance: moves the decode cursor one token on, on the GPU, after a step has sampled:
//   positions[r] += 1 for r < R (the RoPE position of the token each row feeds next),
//   ctrl[0] += 1 (the cache slot it will be written to), ctrl[1] += 1 (the next output step).
// Only invocation 0 touches ctrl, and nothing else reads it in this dispatch. 64 threads a
// workgroup, one per row. Reads and writes positions, ctrl. Exact (integer adds).
struct Params { R: u32 }
@group(0) @binding(0) var<storage, read_write> ctrl: array<u32>;
@group(0) @binding(1) var<storage, read_write> positions: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r == 0u) {
    ctrl[0] += 1u;
    ctrl[1] += 1u;
  }
  if (r < p.R) { positions[r] += 1u; }
}
