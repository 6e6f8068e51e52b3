/**
 * Kernel parameters by name: the field list of a WGSL uniform struct, read from the shader's
 * source, and the packing of a named record into the struct's 32-bit words in the struct's order,
 * checked against it (same keys, same order, values that fit each field's type).
 *
 * @module
 */
import { f32Bits } from "./context.ts";

/** The scalar types a parameter struct may hold (each one 32-bit word). */
export type UniformFieldType = "u32" | "i32" | "f32";

/** One field of a WGSL uniform struct. */
export interface UniformField {
  /** The field's name in the struct. */
  readonly name: string;
  /** Its WGSL type. */
  readonly type: UniformFieldType;
}

/** The fields of one WGSL uniform struct, in declaration order. */
export interface UniformLayout {
  /** Who the parameters are for (the kernel), named in errors. */
  readonly label: string;
  /** The struct's name in the shader, e.g. `"Params"`. */
  readonly struct: string;
  /** The fields in the struct's order. */
  readonly fields: readonly UniformField[];
}

/** Options of {@linkcode uniformLayout}. */
export interface UniformLayoutOptions {
  /** The struct's name in the shader; default `"Params"`. */
  struct?: string;
}

const TYPES: ReadonlySet<string> = new Set(["u32", "i32", "f32"]);

/**
 * Reads the field list of a uniform struct from a shader's source. Every field must be a 32-bit
 * scalar (`u32`, `i32` or `f32`), so the struct packs as one word per field with no padding.
 *
 * @param code The WGSL source.
 * @param label The kernel, named in errors.
 * @param options `struct`: the struct's name (default `"Params"`).
 * @returns The layout.
 * @throws {SyntaxError} When the struct is missing, or a field is not `name: type`.
 * @throws {TypeError} When a field is not a 32-bit scalar.
 *
 * @example Read a struct
 * ```ts
 * import { uniformLayout } from "./uniforms.ts";
 * const layout = uniformLayout("struct Params { n: u32, alpha: f32 }", "scale");
 * console.log(layout.fields.map((f) => `${f.name}: ${f.type}`).join(", ")); // n: u32, alpha: f32
 * ```
 */
export function uniformLayout(
  code: string,
  label: string,
  options: UniformLayoutOptions = {},
): UniformLayout {
  const struct = options.struct ?? "Params";
  const match = new RegExp(`\\bstruct\\s+${struct}\\s*\\{([^}]*)\\}`).exec(code);
  if (!match) {
    throw new SyntaxError(
      `Cannot read the parameters of "${label}": expected a WGSL "struct ${struct} { ... }": ` +
        `none in the shader`,
    );
  }
  const body = match[1].replace(/\/\/[^\n]*/g, "");
  const fields: UniformField[] = [];
  for (const part of body.split(",")) {
    const text = part.trim();
    if (text === "") continue;
    const field = /^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([A-Za-z0-9_<>]+)$/.exec(text);
    if (!field) {
      throw new SyntaxError(
        `Cannot read the parameters of "${label}": expected a field "name: type" in struct ` +
          `${struct}: current text is "${text}"`,
      );
    }
    const [, name, type] = field;
    if (!TYPES.has(type)) {
      throw new TypeError(
        `Cannot read the parameters of "${label}": field "${name}" of struct ${struct} must be ` +
          `u32, i32 or f32: current type is "${type}"`,
      );
    }
    fields.push({ name, type: type as UniformFieldType });
  }
  return { label, struct, fields };
}

/**
 * Packs a named record into the 32-bit words of a uniform struct, for
 * `GpuContext.dispatch`. The record must have exactly the struct's fields, in the struct's order
 * (so a launcher reads like the WGSL it feeds); a `u32` takes an integer in [0, 2³²) or a boolean
 * (1 or 0), an `i32` an integer in [-2³¹, 2³¹), an `f32` any number.
 *
 * @param layout The struct, from {@linkcode uniformLayout}.
 * @param values One value per field, in the struct's order.
 * @returns The words (`f32` fields as their bit patterns).
 * @throws {TypeError} When the keys or their order differ from the struct's, or a value has the
 *   wrong type.
 * @throws {RangeError} When an integer is out of its field's range.
 *
 * @example Pack parameters
 * ```ts
 * import { packUniform, uniformLayout } from "./uniforms.ts";
 * const layout = uniformLayout("struct Params { n: u32, accumulate: u32, alpha: f32 }", "add");
 * const words = packUniform(layout, { n: 4, accumulate: true, alpha: 1 });
 * console.log(words.map((w) => w.toString(16)).join(" ")); // 4 1 3f800000
 * ```
 */
export function packUniform(
  layout: UniformLayout,
  values: Readonly<Record<string, number | boolean>>,
): number[] {
  const { label, struct, fields } = layout;
  const keys = Object.keys(values);
  const names = fields.map((f) => f.name);
  if (keys.length !== names.length || keys.some((key, i) => key !== names[i])) {
    throw new TypeError(
      `Cannot pack the parameters of "${label}": expected the fields of struct ${struct} in ` +
        `its order (${names.join(", ")}): current keys are (${keys.join(", ")})`,
    );
  }
  return fields.map(({ name, type }) => {
    const value = values[name];
    const where = `Cannot pack the parameters of "${label}": field "${name}" (${type})`;
    if (typeof value === "boolean") {
      if (type !== "u32") {
        throw new TypeError(`${where} must be a number: current value is ${value}`);
      }
      return value ? 1 : 0;
    }
    if (typeof value !== "number") {
      throw new TypeError(`${where} must be a number: current value is ${String(value)}`);
    }
    if (type === "f32") return f32Bits(value);
    const [lo, hi] = type === "u32" ? [0, 2 ** 32] : [-(2 ** 31), 2 ** 31];
    if (!Number.isInteger(value) || value < lo || value >= hi) {
      throw new RangeError(
        `${where} must be an integer in [${lo}, ${hi - 1}]: current value is ${value}`,
      );
    }
    return value >>> 0;
  });
}
