// Copyright 2025 the halo authors. MIT license.
// Internal: linear-time scanning helpers for LaTeX strings (brace matching that skips
// escaped characters such as `\{`, and command-group rewriting).

/**
 * Returns the index of the `}` that closes the `{` at `open`, or -1 when unbalanced.
 * A backslash escapes the next character (`\{`, `\}` and `\\` are not group braces).
 */
export function matchBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch === 92 /* \ */) {
      i++;
      continue;
    }
    if (ch === 123 /* { */) depth++;
    else if (ch === 125 /* } */) {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/**
 * Closing-brace index for every `{` of `s` that is closed (escaped braces skipped), in
 * one linear pass; unclosed braces are absent from the map.
 */
export function braceTable(s: string): Map<number, number> {
  const table = new Map<number, number>();
  const stack: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch === 92 /* \ */) {
      i++;
      continue;
    }
    if (ch === 123) stack.push(i);
    else if (ch === 125 && stack.length > 0) table.set(stack.pop() as number, i);
  }
  return table;
}

/** Maximum nesting depth of (), [], {} and \{ \} (escaped braces count as brackets). */
export function nestingDepth(s: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < s.length; i++) {
    let ch = s.charCodeAt(i);
    if (ch === 92 /* \ */) {
      const next = s.charCodeAt(i + 1);
      if (next === 123 || next === 125) {
        ch = next;
        i++;
      } else {
        i++;
        continue;
      }
    }
    if (ch === 40 || ch === 91 || ch === 123) {
      depth++;
      if (depth > max) max = depth;
    } else if (ch === 41 || ch === 93 || ch === 125) {
      if (depth > 0) depth--;
    }
  }
  return max;
}

/**
 * Rewrites every `\name{…}` group whose command name is in `names`, left to right.
 * `replace(content, name, before)` gives the replacement text; `content` is passed raw
 * (nested groups are not rewritten first) and `before` is the end (up to 32 characters)
 * of the output built so far.
 * Unbalanced groups are left alone. Linear in the length of `s`.
 */
export function rewriteGroups(
  s: string,
  names: ReadonlySet<string>,
  replace: (content: string, name: string, before: string) => string,
): string {
  let out = "";
  let i = 0;
  let table: Map<number, number> | null = null;
  while (i < s.length) {
    const bs = s.indexOf("\\", i);
    if (bs < 0) break;
    let j = bs + 1;
    while (j < s.length && isLetter(s.charCodeAt(j))) j++;
    const name = s.slice(bs + 1, j);
    if (name === "" || !names.has(name)) {
      out += s.slice(i, Math.max(j, bs + 2));
      i = Math.max(j, bs + 2);
      continue;
    }
    let k = j;
    while (k < s.length && s[k] === " ") k++;
    if (s[k] === "*") k++; // \hspace*{…}
    while (k < s.length && s[k] === " ") k++;
    if (s[k] !== "{") {
      out += s.slice(i, j);
      i = j;
      continue;
    }
    table ??= braceTable(s);
    const close = table.get(k) ?? -1;
    if (close < 0) {
      out += s.slice(i, j);
      i = j;
      continue;
    }
    out += s.slice(i, bs);
    out += replace(s.slice(k + 1, close), name, out.slice(-32));
    i = close + 1;
  }
  return out + s.slice(i);
}

export function isLetter(ch: number): boolean {
  return (ch >= 65 && ch <= 90) || (ch >= 97 && ch <= 122);
}
