// hilo_grouped_index: per-expert token lists from a router's gates, for the grouped (top-k)
// dispatch of HILO experts. Reads the gates g[t·E + e] (t < m, e < E) at buf[gate_offset …]; an
// expert e takes token t when g ≠ 0 (moe_route writes 0 outside the selected set). Writes, from
// buf[index_offset], as f32 values holding exact integers (tokens < 2^24): counts[E] (tokens per
// expert), offsets[E] (exclusive prefix sum of counts) and the lists at index_offset + 2E:
// expert e's tokens in ascending order at [offsets[e], offsets[e] + counts[e]). One workgroup of
// 64 threads, thread e scans expert e's column (E ≤ 64): deterministic, no atomics. Reads and
// writes buf (one read_write binding: the gates and the index share the module's scratch; the
// ranges must not overlap). Exact (integer counts and token ids).
struct Params { m: u32, experts: u32, gate_offset: u32, index_offset: u32 }
const MAX_E: u32 = 64u;
@group(0) @binding(0) var<storage, read_write> buf: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
var<workgroup> counts: array<u32, MAX_E>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) e: u32) {
  let E = p.experts;
  var c = 0u;
  if (e < E) {
    for (var t = 0u; t < p.m; t++) {
      if (buf[p.gate_offset + t * E + e] != 0.0) { c++; }
    }
  }
  counts[e] = c;
  workgroupBarrier();
  if (e >= E) { return; }
  var off = 0u;
  for (var j = 0u; j < e; j++) { off += counts[j]; }
  buf[p.index_offset + e] = f32(c);
  buf[p.index_offset + E + e] = f32(off);
  let list = p.index_offset + 2u * E + off;
  var n = 0u;
  for (var t = 0u; t < p.m; t++) {
    if (buf[p.gate_offset + t * E + e] != 0.0) {
      buf[list + n] = f32(t);
      n++;
    }
  }
}
