// kv_write: stores new keys and values into a KV cache in place.
//   k_new, v_new [R, T, W]      W = kv heads * head dim, for rows r < R and tokens t < T
//   k_cache, v_cache [Rc, S, W] slot stride S (the cache capacity), row stride S * W
//   k_cache[row0 + r, slot(t)] = k_new[r, t], likewise v, with slot(t) = t (DECODE = false, a
//   prefill from slot 0) or ctrl[0] + t (DECODE = true, the decode cursor kept on the GPU); the
//   decode variant also marks mask[row0 + r, slot] = 1 so attention sees the new key. Slots >= S
//   are dropped. 256 threads a workgroup, one per (r, t, w).
// Reads k_new, v_new, ctrl; writes k_cache, v_cache, mask (decode only). Exact (a copy).
struct Params { R: u32, T: u32, S: u32, W: u32, row0: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> k_new: array<f32>;
@group(0) @binding(1) var<storage, read> v_new: array<f32>;
@group(0) @binding(2) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> mask: array<u32>;
@group(0) @binding(5) var<storage, read> ctrl: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

override DECODE: bool = false;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let idx = (wg.x + wg.y * GRID_X) * 256u + li;
  if (idx >= p.R * p.T * p.W) { return; }
  let w = idx % p.W;
  let t = (idx / p.W) % p.T;
  let r = idx / (p.W * p.T);
  let slot = select(t, ctrl[0] + t, DECODE);
  if (slot >= p.S) { return; }
  let dst = ((p.row0 + r) * p.S + slot) * p.W + w;
  k_cache[dst] = k_new[idx];
  v_cache[dst] = v_new[idx];
  if (DECODE && w == 0u) { mask[(p.row0 + r) * p.S + slot] = 1u; }
}
