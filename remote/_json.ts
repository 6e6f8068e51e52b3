// Small readers of untrusted JSON for the engine backends: each returns the value or a string
// saying what was expected and what came.

/** Whether a value is a plain JSON object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short rendering of a JSON value for error messages. */
export function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** An array of integers, or what was wrong. */
export function intArray(value: unknown, what: string): number[] | string {
  if (!Array.isArray(value)) return `expected ${what} as an array of token ids: got ${show(value)}`;
  for (let i = 0; i < value.length; i++) {
    if (!Number.isInteger(value[i])) {
      return `expected ${what} as an array of token ids: entry ${i} is ${show(value[i])}`;
    }
  }
  return value as number[];
}

/** An array of numbers (a `null` entry is wrong), or what was wrong. */
export function numberArray(value: unknown, what: string): number[] | string {
  if (!Array.isArray(value)) return `expected ${what} as an array of numbers: got ${show(value)}`;
  for (let i = 0; i < value.length; i++) {
    if (typeof value[i] !== "number") {
      return `expected ${what} as an array of numbers: entry ${i} is ${show(value[i])}`;
    }
  }
  return value as number[];
}
