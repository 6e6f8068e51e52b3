// Copyright 2025 the halo authors. MIT license.
/** Helpers for the chart tests: mark counts and an XML well-formedness check of SVG text. */

/** Counts the elements whose `aria-roledescription` is exactly `role` ("line mark", "point", …). */
export function countRole(svg: string, role: string): number {
  return svg.split(`aria-roledescription="${role}"`).length - 1;
}

/**
 * Checks that `svg` is one well-formed `<svg>` element: tags balanced and properly nested,
 * attributes quoted, no stray `<` and only the XML entities or numeric references in text.
 * Returns the problem, or null when there is none.
 */
export function xmlProblem(svg: string): string | null {
  if (!svg.startsWith("<svg")) return "does not start with <svg";
  if (!svg.trimEnd().endsWith("</svg>")) return "does not end with </svg>";
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/g;
  const stack: string[] = [];
  let last = 0;
  for (const match of svg.matchAll(tag)) {
    const text = svg.slice(last, match.index);
    if (text.includes("<") || text.includes(">")) return `stray markup near ${match.index}`;
    if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(text)) {
      return `bad entity near ${last}`;
    }
    last = match.index + match[0].length;
    const [, closing, name, , selfClosing] = match;
    if (closing) {
      if (stack.pop() !== name) return `unbalanced </${name}> at ${match.index}`;
    } else if (!selfClosing) stack.push(name);
    if (stack.length === 0 && last < svg.trimEnd().length) {
      return `content after the root at ${last}`;
    }
  }
  if (stack.length !== 0) return `unclosed <${stack.at(-1)}>`;
  return last === svg.trimEnd().length ? null : `unparsed text at ${last}`;
}
