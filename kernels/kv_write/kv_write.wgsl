// kv_write: stores new keys and values into a KV cache in place.
//   k_new, v_new [R, T, W]      W = kv heads * head dim, for rows r < R and tokens t < T
//   k_cache, v_cache [Rc, S, W] slot stride S (the cache capacity), row stride S * W
//   k_cache[row0 + r, slot(t)] = k_new[r, t], likewise v, with slot(t) = t (DECODE = false, a
//   prefill from slot 0) or ctrl[0] + t (DECODE = true, the decode cursor kept on the GPU); the
//   decode variant also marks mask[row0 + r, slot] = 1 so attention sees the new key. Slots >= S
//   are dropped. 256 threads a workgroup, one per (r, t, w).
// Cache storage (kernels/_kv_f16.ts): f32 (KvWord = f32, one value a word), or packed f16
// (KvWord = u32, KV_F16 = true; W even): one thread per pair of values (r, t, w), (r, t, w + 1)
// rounded to f16 (pack2x16float: a neighbouring f16, the nearest on the adapters tested; values
// past +-65504 saturate) into one word.
// Reads k_new, v_new, ctrl; writes k_cache, v_cache, mask (decode only). Exact (a copy) for f32;
// f16: each value one of the two f16 neighbours of the input (relative error <= 2^-10).
struct Params { R: u32, T: u32, S: u32, W: u32, row0: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
// The cache's word type: u32 in the packed-f16 variant (the one substitution kv_write.ts makes).
alias KvWord = f32;
@group(0) @binding(0) var<storage, read> k_new: array<f32>;
@group(0) @binding(1) var<storage, read> v_new: array<f32>;
@group(0) @binding(2) var<storage, read_write> k_cache: array<KvWord>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<KvWord>;
@group(0) @binding(4) var<storage, read_write> mask: array<u32>;
@group(0) @binding(5) var<storage, read> ctrl: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

override DECODE: bool = false;
override KV_F16: bool = false;

// Two values as one packed-f16 word, saturated to the finite f16 range.
fn pack_kv(x: vec2f) -> u32 {
  return pack2x16float(clamp(x, vec2f(-65504.0), vec2f(65504.0)));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  // The thread's first value: one value a thread (f32), a pair (packed f16).
  let idx = ((wg.x + wg.y * GRID_X) * 256u + li) * select(1u, 2u, KV_F16);
  if (idx >= p.R * p.T * p.W) { return; }
  let w = idx % p.W;
  let t = (idx / p.W) % p.T;
  let r = idx / (p.W * p.T);
  let slot = select(t, ctrl[0] + t, DECODE);
  if (slot >= p.S) { return; }
  let dst = ((p.row0 + r) * p.S + slot) * p.W + w;
  if (KV_F16) {
    k_cache[dst / 2u] = bitcast<KvWord>(pack_kv(vec2f(k_new[idx], k_new[idx + 1u])));
    v_cache[dst / 2u] = bitcast<KvWord>(pack_kv(vec2f(v_new[idx], v_new[idx + 1u])));
  } else {
    k_cache[dst] = bitcast<KvWord>(k_new[idx]);
    v_cache[dst] = bitcast<KvWord>(v_new[idx]);
  }
  if (DECODE && w == 0u) { mask[(p.row0 + r) * p.S + slot] = 1u; }
}
