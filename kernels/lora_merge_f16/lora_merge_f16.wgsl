// lora_merge_f16: a LoRA expert merged into f16 weights, out = f16(f32(w) + alpha · b·a), for an
// [n, k] row-major weight held as f16 pairs packed in 32-bit words (element e is half e % 2 of
// word e / 2; core WGSL unpack2x16float / pack2x16float: no "shader-f16" feature needed), a
// [r, k] and b [n, r] f32 (PEFT's lora_A, lora_B). The sum over r and the add are f32; the one
// rounding to f16 is the last step (pack2x16float: round to nearest on the adapters seen, though
// WGSL lets it round either way). Reads w, a, b; writes out (every word holding an element; with
// n·k odd the last word's upper half is left as 0) and, for elements that f16 cannot hold (a
// value whose nearest-even f16 is ±Inf: |v| >= 65520, or NaN where the device keeps NaNs), adds
// their count to status[0] and raises status[1] to at least tag + 1; those elements are written
// as ±65504 (clamped), the caller turns the count into an error (the rule of internal/f16.ts).
// Values in (65504, 65520) are clamped to 65504, as rounding to nearest even would give.
// One thread per word (two elements), 256 threads a workgroup, word = (wg.x + wg.y * GRID_X) *
// 256 + local. w and a, b must not alias out. Tolerance vs f64 reference: an f16 neighbour of the
// f64 value within the f32 rounding of an r-term sum, (r + 2) · 2^-24 · (|w| + |alpha| Σ|b·a|).
struct Params { n: u32, k: u32, r: u32, alpha: f32, tag: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> p: Params;

// The largest finite f16, and the least value that rounds (to nearest even) to +Inf.
const F16_MAX: f32 = 65504.0;
const F16_INF_AT: f32 = 65520.0;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let word = (wg.x + wg.y * GRID_X) * 256u + t;
  let total = p.n * p.k;
  let e0 = 2u * word;
  if (e0 >= total) { return; }
  // The word's second element: the next one, or (past the end) the first again, unused.
  let two = e0 + 1u < total;
  let e1 = select(e0, e0 + 1u, two);
  let o0 = e0 / p.k;
  let i0 = e0 - o0 * p.k;
  let o1 = e1 / p.k;
  let i1 = e1 - o1 * p.k;
  var s = vec2f(0.0);
  for (var j = 0u; j < p.r; j++) {
    let bj = vec2f(b[o0 * p.r + j], b[o1 * p.r + j]);
    let aj = vec2f(a[j * p.k + i0], a[j * p.k + i1]);
    s = fma(bj, aj, s);
  }
  var v = unpack2x16float(w[word]) + p.alpha * s;
  if (!two) { v.y = 0.0; }
  let bad = !(abs(v) < vec2f(F16_INF_AT));
  let count = u32(bad.x) + u32(bad.y);
  if (count > 0u) {
    atomicAdd(&status[0], count);
    atomicMax(&status[1], p.tag + 1u);
  }
  out[word] = pack2x16float(clamp(v, vec2f(-F16_MAX), vec2f(F16_MAX)));
}
