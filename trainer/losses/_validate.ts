// Private: argument checks shared by the loss pieces. Every message starts with the caller's
// "Cannot …" phrase and names the argument, what was expected and what came (std style).

/** Throws unless `x` is a non-negative integer ("batch", "seqLen", …). */
export function checkCount(where: string, name: string, x: unknown, min = 0): number {
  if (typeof x !== "number" || !Number.isInteger(x) || x < min) {
    throw new RangeError(
      `${where}: "${name}" must be an integer ≥ ${min}: current value is ${describe(x)}`,
    );
  }
  return x;
}

/** Throws unless `array` has `expected` values; `shape` says which layout was expected. */
export function checkLength(
  where: string,
  name: string,
  array: ArrayLike<unknown> | undefined,
  expected: number,
  shape: string,
): void {
  if (array === undefined || array === null || typeof array.length !== "number") {
    throw new TypeError(
      `${where}: "${name}" must be an array of ${expected} values (${shape}): current value is ` +
        `${describe(array)}`,
    );
  }
  if (array.length !== expected) {
    throw new RangeError(
      `${where}: "${name}" must have ${expected} values (${shape}): current length is ` +
        `${array.length}`,
    );
  }
}

/** Throws unless every value of `array` is a finite number. */
export function checkFinite(where: string, name: string, array: ArrayLike<number>): void {
  for (let i = 0; i < array.length; i++) {
    const v = array[i];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new RangeError(
        `${where}: "${name}[${i}]" must be a finite number: current value is ${describe(v)}`,
      );
    }
  }
}

/** Throws unless every value of `array` is 0 or 1; returns their sum. */
export function checkMask(where: string, name: string, array: ArrayLike<unknown>): number {
  let ones = 0;
  for (let i = 0; i < array.length; i++) {
    const v = array[i];
    if (v === 1 || v === true) ones++;
    else if (v !== 0 && v !== false) {
      throw new RangeError(
        `${where}: "${name}[${i}]" must be 0 or 1: current value is ${describe(v)}`,
      );
    }
  }
  return ones;
}

/** Throws unless `x` is undefined or a finite number satisfying `ok` (described by `what`). */
export function checkOption(
  where: string,
  name: string,
  x: unknown,
  ok: (x: number) => boolean,
  what: string,
): void {
  if (x === undefined) return;
  if (typeof x !== "number" || !Number.isFinite(x) || !ok(x)) {
    throw new RangeError(
      `${where}: option "${name}" must be ${what}: current value is ${describe(x)}`,
    );
  }
}

/** Throws unless `x` is one of `names`. */
export function checkName<T extends string>(
  where: string,
  name: string,
  x: unknown,
  names: readonly T[],
): T {
  if (typeof x !== "string" || !(names as readonly string[]).includes(x)) {
    throw new TypeError(
      `${where}: option "${name}" must be one of ${names.map((n) => `"${n}"`).join(", ")}: ` +
        `current value is ${describe(x)}`,
    );
  }
  return x as T;
}

/** A value as an error message shows it: strings quoted, arrays by length. */
export function describe(x: unknown): string {
  if (typeof x === "string") return `"${x}"`;
  if (typeof x === "number" || typeof x === "boolean" || x === undefined || x === null) {
    return String(x);
  }
  if (Array.isArray(x) || ArrayBuffer.isView(x)) return `an array`;
  return typeof x;
}
