import { deepStrictEqual, throws } from "node:assert/strict";
import { packUniform, uniformLayout } from "./uniforms.ts";
import { f32Bits } from "./context.ts";

const WGSL = `
struct Other { a: f32 }
struct Params {
  M: u32, N: u32, // rows, columns
  shift: i32,
  alpha: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
`;

Deno.test("uniformLayout() reads the fields of the struct in order", () => {
  deepStrictEqual(uniformLayout(WGSL, "k").fields, [
    { name: "M", type: "u32" },
    { name: "N", type: "u32" },
    { name: "shift", type: "i32" },
    { name: "alpha", type: "f32" },
  ]);
  deepStrictEqual(uniformLayout(WGSL, "k", { struct: "Other" }).fields, [
    { name: "a", type: "f32" },
  ]);
});

Deno.test("uniformLayout() rejects a missing struct and non-scalar fields", () => {
  throws(() => uniformLayout("struct Q { a: u32 }", "k"), {
    name: "SyntaxError",
    message: 'Cannot read the parameters of "k": expected a WGSL "struct Params { ... }": ' +
      "none in the shader",
  });
  throws(() => uniformLayout("struct Params { a: vec4f }", "k"), {
    name: "TypeError",
    message: 'Cannot read the parameters of "k": field "a" of struct Params must be u32, i32 ' +
      'or f32: current type is "vec4f"',
  });
});

Deno.test("packUniform() packs a record in the struct's order", () => {
  const layout = uniformLayout(WGSL, "k");
  deepStrictEqual(packUniform(layout, { M: 3, N: 2 ** 32 - 1, shift: -1, alpha: 0.5 }), [
    3,
    0xffffffff,
    0xffffffff,
    f32Bits(0.5),
  ]);
  deepStrictEqual(packUniform(uniformLayout("struct Params { on: u32 }", "k"), { on: true }), [1]);
});

Deno.test("packUniform() names the field when keys, order or values do not match", () => {
  const layout = uniformLayout(WGSL, "k");
  throws(() => packUniform(layout, { N: 1, M: 1, shift: 0, alpha: 1 }), {
    name: "TypeError",
    message: 'Cannot pack the parameters of "k": expected the fields of struct Params in its ' +
      "order (M, N, shift, alpha): current keys are (N, M, shift, alpha)",
  });
  throws(() => packUniform(layout, { M: 1, N: 1, shift: 0 }), { name: "TypeError" });
  throws(() => packUniform(layout, { M: 1, N: 1, shift: 0, alpha: 1, extra: 2 }), {
    name: "TypeError",
  });
  throws(() => packUniform(layout, { M: -1, N: 1, shift: 0, alpha: 1 }), {
    name: "RangeError",
    message: 'Cannot pack the parameters of "k": field "M" (u32) must be an integer in ' +
      "[0, 4294967295]: current value is -1",
  });
  throws(() => packUniform(layout, { M: 1.5, N: 1, shift: 0, alpha: 1 }), {
    name: "RangeError",
  });
  throws(() => packUniform(layout, { M: 1, N: 1, shift: 2 ** 31, alpha: 1 }), {
    name: "RangeError",
  });
  throws(() => packUniform(layout, { M: 1, N: 1, shift: 0, alpha: true }), {
    name: "TypeError",
    message: 'Cannot pack the parameters of "k": field "alpha" (f32) must be a number: ' +
      "current value is true",
  });
});
