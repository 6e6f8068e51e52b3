// _hilo_rows: the rows-times-rank tile product shared by hilo_grouped_expert.wgsl and
// hilo_grouped_backward_rows.wgsl (their launchers append this file). Each workgroup of 64 threads
// holds the TM tokens `tok` of its slice of an expert's list; thread li owns the outputs
// o = li + 64·q (q < PER) of a [TM, r] product, o = row·r + c. Both kernels declare TM, KT, PER
// (= TM · MAX_R / 64), Params (in_f), x [m, in] and A [r, in].
var<workgroup> ls: array<f32, 512>; // TM · KT: a K slice of the rows (x or dy)
var<workgroup> ws: array<f32, 2048>; // MAX_R · KT: the same slice of the r columns (A or B)
var<workgroup> tok: array<u32, TM>;
var<private> acc: array<f32, PER>;

fn zero_acc() {
  for (var q = 0u; q < PER; q++) { acc[q] = 0.0; }
}

// acc[o] += Σ_kk ls[row, kk] · ws[c, kk] over the staged slice, for the thread's outputs < TM·r.
fn tile_dots(li: u32, r: u32) {
  for (var q = 0u; q < PER; q++) {
    let o = li + 64u * q;
    if (o < TM * r) {
      let row = o / r;
      let c = o % r;
      var s = 0.0;
      for (var kk = 0u; kk < KT; kk++) { s += ls[row * KT + kk] * ws[c * KT + kk]; }
      acc[q] += s;
    }
  }
}

// acc = x[tok]·Aᵀ: the thread's outputs of u [TM, r] (rows past `rows` are 0).
fn x_times_at(li: u32, rows: u32, r: u32) {
  zero_acc();
  for (var k0 = 0u; k0 < p.in_f; k0 += KT) {
    for (var i = li; i < TM * KT; i += 64u) {
      let row = i / KT;
      let k = k0 + i % KT;
      ls[i] = select(0.0, x[tok[row] * p.in_f + k], row < rows && k < p.in_f);
    }
    for (var i = li; i < r * KT; i += 64u) {
      let k = k0 + i % KT;
      ws[i] = select(0.0, a[(i / KT) * p.in_f + k], k < p.in_f);
    }
    workgroupBarrier();
    tile_dots(li, r);
    workgroupBarrier();
  }
}
