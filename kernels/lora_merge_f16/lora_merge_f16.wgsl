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
// Variants (override BLOCKED): the general one, one thread per word (two elements, which may lie
// in two rows when k is odd), thread = (wg.x + wg.y * GRID_X) * 256 + local; and, for k a multiple
// of 8 (every Qwen3 projection), the blocked one: one thread per 4 rows × 8 columns (16 words), so
// that each b value read serves 8 products and each a value 4 (the general one: 1 and 1); rows
// past n are not written. 256 threads a workgroup. w and a, b must not alias out. Tolerance vs f64 reference: an f16 neighbour of the
// f64 value within the f32 rounding of an r-term sum, (r + 2) · 2^-24 · (|w| + |alpha| Σ|b·a|).
struct Params { n: u32, k: u32, r: u32, alpha: f32, tag: u32 }
// Workgroups per grid row: set by the launcher from GRID_X in kernels/_grid.ts.
override GRID_X: u32;
// The 4 × 8 blocked variant (k % 8 == 0).
override BLOCKED: bool = false;
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> p: Params;

// The largest finite f16, and the least value that rounds (to nearest even) to +Inf.
const F16_MAX: f32 = 65504.0;
const F16_INF_AT: f32 = 65520.0;

// Adds the merged values `v` of the word's two elements (`two`: the second one exists) to the
// status when beyond the f16 range; returns the word.
fn pack(v: vec2f, two: bool) -> u32 {
  let bad = !(abs(v) < vec2f(F16_INF_AT));
  let count = u32(bad.x) + u32(bad.y && two);
  if (count > 0u) {
    atomicAdd(&status[0], count);
    atomicMax(&status[1], p.tag + 1u);
  }
  return pack2x16float(clamp(v, vec2f(-F16_MAX), vec2f(F16_MAX)));
}

// Rows 4·rb .. 4·rb + 3, columns 8·cb .. 8·cb + 7.
fn blocked(thread: u32) {
  let cols8 = p.k / 8u;
  let rb = thread / cols8;
  let i = (thread - rb * cols8) * 8u;
  let o = rb * 4u;
  if (o >= p.n) { return; }
  var acc: array<array<vec4f, 2>, 4>;
  for (var j = 0u; j < p.r; j++) {
    let at = j * p.k + i;
    let a0 = vec4f(a[at], a[at + 1u], a[at + 2u], a[at + 3u]);
    let a1 = vec4f(a[at + 4u], a[at + 5u], a[at + 6u], a[at + 7u]);
    for (var q = 0u; q < 4u; q++) {
      // Rows past n read row n - 1 (in bounds) and are not written.
      let bq = vec4f(b[min(o + q, p.n - 1u) * p.r + j]);
      acc[q][0] = fma(bq, a0, acc[q][0]);
      acc[q][1] = fma(bq, a1, acc[q][1]);
    }
  }
  for (var q = 0u; q < 4u; q++) {
    if (o + q >= p.n) { return; }
    let word = ((o + q) * p.k + i) / 2u;
    for (var h = 0u; h < 2u; h++) {
      let s = p.alpha * acc[q][h];
      let w0 = word + 2u * h;
      out[w0] = pack(unpack2x16float(w[w0]) + s.xy, true);
      out[w0 + 1u] = pack(unpack2x16float(w[w0 + 1u]) + s.zw, true);
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  if (BLOCKED) {
    blocked((wg.x + wg.y * GRID_X) * 256u + t);
    return;
  }
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
  out[word] = pack(v, two);
}
