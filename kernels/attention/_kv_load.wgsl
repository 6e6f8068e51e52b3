// _kv_load: how the attention forward kernels (attention.wgsl, attention_split.wgsl and
// attention_flash.wgsl, which attention.ts appends this text to) read their k and v bindings,
// declared `array<KvWord>`. f32 (KvWord = f32, KV_F16 false): one value a word. Packed f16 (a KV
// cache of dtype "f16": attention.ts substitutes `alias KvWord = u32;` and sets KV_F16): value i
// is half i % 2 of word i / 2 (unpack2x16float, core WGSL: any adapter), widened to f32 exactly,
// so the arithmetic is the f32 kernel's. D even for f16 (every head starts on a word).
alias KvWord = f32;
override KV_F16: bool = false;

fn load_k(i: u32) -> f32 {
  if (KV_F16) { return unpack2x16float(bitcast<u32>(k[i >> 1u]))[i & 1u]; }
  return bitcast<f32>(k[i]);
}

fn load_v(i: u32) -> f32 {
  if (KV_F16) { return unpack2x16float(bitcast<u32>(v[i >> 1u]))[i & 1u]; }
  return bitcast<f32>(v[i]);
}

// Values i, i + 1 (i even when KV_F16: one whole word).
fn load_k2(i: u32) -> vec2f {
  if (KV_F16) { return unpack2x16float(bitcast<u32>(k[i >> 1u])); }
  return vec2f(bitcast<f32>(k[i]), bitcast<f32>(k[i + 1u]));
}

// Values i .. i + 3 (i even when KV_F16: two whole words).
fn load_k4(i: u32) -> vec4f {
  if (KV_F16) {
    let w = i >> 1u;
    return vec4f(unpack2x16float(bitcast<u32>(k[w])), unpack2x16float(bitcast<u32>(k[w + 1u])));
  }
  return vec4f(
    bitcast<f32>(k[i]),
    bitcast<f32>(k[i + 1u]),
    bitcast<f32>(k[i + 2u]),
    bitcast<f32>(k[i + 3u]),
  );
}

fn load_v4(i: u32) -> vec4f {
  if (KV_F16) {
    let w = i >> 1u;
    return vec4f(unpack2x16float(bitcast<u32>(v[w])), unpack2x16float(bitcast<u32>(v[w + 1u])));
  }
  return vec4f(
    bitcast<f32>(v[i]),
    bitcast<f32>(v[i + 1u]),
    bitcast<f32>(v[i + 2u]),
    bitcast<f32>(v[i + 3u]),
  );
}
