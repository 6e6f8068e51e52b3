// Copyright 2025 the halo authors. MIT license.
/**
 * Normalisation of an extracted answer string into a canonical LaTeX form.
 *
 * @module
 */

import { braceTable, isLetter, rewriteGroups } from "./_latex_scan.ts";
import { isUnitPhrase, UNIT_WORDS } from "./_units.ts";

/** Options for {@linkcode normalizeAnswer}. */
export interface NormalizeAnswerOptions {
  /**
   * Drop unit words after a number (`5\text{ cm}`, `10 dollars`), degree marks and
   * percent signs. Default `true` (the MATH convention: `10\%` and `10` are the same
   * answer).
   */
  stripUnits?: boolean;
  /**
   * Inputs longer than this many characters are returned trimmed but otherwise
   * untouched, so normalisation stays linear and cheap. Default `20000`.
   */
  maxLength?: number;
}

const UNICODE: ReadonlyArray<readonly [RegExp, string]> = [
  [/[\u2212\u2012\u2013\u2014\uFE63\uFF0D]/g, "-"],
  [/\u00D7/g, "\\times "],
  [/[\u00B7\u22C5\u2219]/g, "\\cdot "],
  [/\u00F7/g, "\\div "],
  [/\u03C0/g, "\\pi "],
  [/\u221E/g, "\\infty "],
  [/[\u2264\u2A7D]/g, "\\le "],
  [/[\u2265\u2A7E]/g, "\\ge "],
  [/\u2260/g, "\\ne "],
  [/\u2248/g, "\\approx "],
  [/\u00B1/g, "\\pm "],
  [/\u2213/g, "\\pm "],
  [/\u222A/g, "\\cup "],
  [/\u2229/g, "\\cap "],
  [/\u2208/g, "\\in "],
  [/\u2205/g, "\\emptyset "],
  [/\u2026/g, "\\ldots "],
  [/\u00BD/g, "\\frac{1}{2}"],
  [/\u2153/g, "\\frac{1}{3}"],
  [/\u2154/g, "\\frac{2}{3}"],
  [/\u00BC/g, "\\frac{1}{4}"],
  [/\u00BE/g, "\\frac{3}{4}"],
  [/\u00B2/g, "^2"],
  [/\u00B3/g, "^3"],
  [/\u00B0/g, "^\\circ "],
  [/\u221A\s*(\d+|[a-zA-Z])/g, "\\sqrt{$1}"],
  [/\u221A/g, "\\sqrt"],
  [/[\u00A0\u2000-\u200A\u202F\u205F\u3000]/g, " "],
  [/[\u200B\u200C\u200D\u2060\uFEFF]/g, ""],
  [/[\u2018\u2019]/g, "'"],
  [/[\u201C\u201D]/g, '"'],
];

const TEXT_LIKE = new Set([
  "text",
  "textbf",
  "textit",
  "textrm",
  "textsf",
  "texttt",
  "textnormal",
  "textup",
  "mathrm",
  "mathit",
  "mathsf",
  "mathtt",
  "mathbf",
  "boldsymbol",
  "mbox",
  "emph",
  "hbox",
]);
const BOXES = new Set(["boxed", "fbox", "framebox"]);
const DROP_GROUPS = new Set(["hspace", "vspace", "phantom", "hphantom", "vphantom", "label"]);
/** Commands that Hendrycks' checker un-doubles (`\\frac` → `\frac`). */
const KNOWN_COMMANDS =
  /\\\\(?=(?:frac|dfrac|tfrac|sqrt|pi|text|left|right|cdot|times|infty|pm|le|ge|neq|ne|sin|cos|tan|log|ln)(?![a-zA-Z]))/g;

/**
 * Normalises an answer string (already extracted from a response) to a canonical LaTeX
 * form that the parser and the string fast path both understand.
 *
 * What it does, in order: unicode symbols to LaTeX (`−`, `×`, `π`, `√`, `≤`, `°`, `½`…);
 * `\boxed{…}` / `\fbox{…}` unwrapped; `$…$`, `\(…\)`, `\[…\]` delimiters and `\$`
 * removed; `\left` / `\right` / `\big…` dropped; `\dfrac` / `\tfrac` / `\cfrac` →
 * `\frac`; spacing commands (`\!`, `\,`, `\;`, `\quad`, `~`) removed; thousands
 * separators (`1,000`, `10,\!080`, `1{,}000`) removed; a decimal comma next to a
 * currency read as a point (`3,50 €` → `3.50`; a bare `1,5` stays a list); `€` dropped
 * like `\$`; every matrix environment (`array`, `bmatrix`, `vmatrix`, …, also inside
 * `(…)` / `[…]`) written as `pmatrix`; `\quad` and plain "and"/"or" between two items
 * read as list separators; `\text{…}` / `\mathrm{…}` /
 * `\mbox{…}` unwrapped or, for unit words after a number, dropped; `^\circ`, degrees,
 * `\%` and percent dropped; markdown bold and a leading "the answer is" dropped;
 * a sentence around the answer reduced to it ("the smallest k is 17" → `17`); an
 * approximation reduced to its exact side (`\frac27 \approx 0.29` → `\frac27`); a chain
 * of two or more `=` reduced to its last side (`y = 3\cdot4 - 3 = 9` → `9`);
 * a single-variable assignment with a constant right side (`x = 5`) reduced to its value;
 * choice letters (`(C)`, `\text{(C)}`, `\textbf{C}`) reduced to the letter; trailing
 * punctuation removed; spaces outside `\text{}` removed. It never throws.
 *
 * @param answer The answer text, e.g. the content of a `\boxed{…}`.
 * @param options Normalisation options.
 * @returns The normalised answer (possibly empty).
 *
 * @example Usage
 * ```ts
 * import { normalizeAnswer } from "./normalize_answer.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(normalizeAnswer("$\\dfrac{1}{2}$."), "\\frac{1}{2}");
 * assert.equal(normalizeAnswer("10,\\!080"), "10080");
 * assert.equal(normalizeAnswer("x = 5"), "5");
 * assert.equal(normalizeAnswer("90^\\circ"), "90");
 * ```
 */
export function normalizeAnswer(answer: string, options: NormalizeAnswerOptions = {}): string {
  try {
    if (typeof answer !== "string") return "";
    const maxLength = options.maxLength ?? 20000;
    if (answer.length > maxLength) return answer.trim();
    return normalizeInner(answer, options.stripUnits ?? true);
  } catch {
    return typeof answer === "string" ? answer.trim() : "";
  }
}

function normalizeInner(input: string, stripUnits: boolean): string {
  let s = stripControl(input.replace(/[\r\n\t\f\v]+/g, " "));
  for (const [re, to] of UNICODE) s = s.replace(re, to);

  // Markdown emphasis and leading "the answer is".
  s = s.replace(/\*\*/g, "").trim();
  s = s.replace(/^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?\s*/i, "");

  // Boxes (possibly nested) are unwrapped.
  for (let guard = 0; guard < 4 && /\\(?:boxed|fbox|framebox)(?![a-zA-Z])/.test(s); guard++) {
    s = rewriteGroups(s, BOXES, (content) => content);
    s = s.replace(/\\boxed\s+(?=[^{\s])/g, "");
  }

  // Math delimiters and currency. A decimal comma is read only next to a currency sign and
  // with 1 or 2 decimals ("3,50 €", "€3,5"): "2,000" stays a thousands separator and a
  // bare "1,5" stays a list.
  s = s.replace(/\\text\{\s*(€|EUR|euros?)\s*\}/g, " $1 ").replace(/\\euro(?![a-zA-Z])/g, " € ");
  s = s.replace(
    /^(\s*[-+]?\s*)(?:€\s*)?(\d{1,3}(?:\.\d{3})*|\d+),(\d{1,2})\s*(?:€|EUR\b|euros?\b)?\s*$/,
    (m, sign: string, int: string, frac: string) =>
      /€|EUR|euro/.test(m) ? `${sign}${int.replace(/\./g, "")}.${frac}` : m,
  );
  s = s.replace(/€|\bEUR\b/g, " ");
  s = s.replace(/\\\$/g, " ").replace(/\\textdollar(?![a-zA-Z])/g, " ");
  s = s.replace(/\$/g, " ");
  s = s.replace(/(^|[^\\])\\[()[\]]/g, "$1 ");
  s = s.replace(/^\\[()[\]]/, " ");
  if (!s.includes("\\begin")) s = s.replace(KNOWN_COMMANDS, "\\");
  // Protect row breaks "\\" from the single-backslash rules below.
  s = s.replace(/\\\\/g, "\uE002");

  s = s.replace(/\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![a-zA-Z])/g, " ");
  s = s.replace(/\\(?:left|right)\s*\.(?!\d)/g, " ");
  s = s.replace(/\\middle\s*\|/g, "|");
  s = s.replace(
    /\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|bigg|Bigg|big|Big)(?![a-zA-Z])\s*/g,
    "",
  );
  s = s.replace(/\\(?:dfrac|tfrac|cfrac)(?![a-zA-Z])/g, "\\frac");
  s = s.replace(/\\(?:dbinom|tbinom)(?![a-zA-Z])/g, "\\binom");
  s = s.replace(/\\(?:lbrace)(?![a-zA-Z])/g, "\\{").replace(/\\(?:rbrace)(?![a-zA-Z])/g, "\\}");
  s = s.replace(/\\gt(?![a-zA-Z])/g, ">").replace(/\\lt(?![a-zA-Z])/g, "<");
  s = s.replace(/\\mp(?![a-zA-Z])/g, "\\pm");
  s = s.replace(/\\(?:leqslant|leq)(?![a-zA-Z])/g, "\\le");
  s = s.replace(/\\(?:geqslant|geq)(?![a-zA-Z])/g, "\\ge");
  s = s.replace(/\\neq(?![a-zA-Z])/g, "\\ne");
  s = rewriteGroups(s, DROP_GROUPS, () => " ");
  s = canonicalMatrices(s);

  // Thousands separators that are unambiguous inside a larger string.
  s = s.replace(/(\d),\\!\s*(?=\d{3}(?!\d))/g, "$1");
  s = s.replace(/(\d)\{,\}(?=\d{3}(?!\d))/g, "$1");
  s = s.replace(/\\!/g, "");
  s = s.replace(/(\d)\\[,;:> ]\s*(?=\d{3}(?!\d))/g, "$1");
  // "3 \quad 5", "x = 1 \qquad y = 2": a separator between two items of a list.
  s = s.replace(
    /([\d)\]}])\s*(?:\\(?:qquad|quad)(?![a-zA-Z])\s*)+(?=[-\d([]|\\\{|[a-zA-Z](?:_\{?\w+\}?)?\s*=)/g,
    "$1, ",
  );
  s = s.replace(/\\(?:qquad|quad)(?![a-zA-Z])/g, " ");
  // Plain "and" / "or" between two math items: "(1,4) and (4,1)", "x = 2 or x = 7".
  s = s.replace(/([\d)\]}])\s+(and|or)\s+(?=[-\d([]|\\\{|[a-zA-Z]\s*=)/g, "$1 \\text{ $2 } ");
  s = s.replace(/\\[,;:> ]/g, " ").replace(/~/g, " ");

  // Degrees and percent.
  if (stripUnits) {
    // Inside a trigonometric function the degree sign matters (\sin 30^\circ = 1/2): it is
    // then left for the parser, which converts degrees to radians there.
    if (!/\\(?:sin|cos|tan|cot|sec|csc)(?![a-zA-Z])/.test(s)) {
      s = s.replace(/\^\s*\{\s*\\circ\s*\}/g, " ").replace(/\^\s*\\circ(?![a-zA-Z])/g, " ");
    }
    s = s.replace(/\\degree(?![a-zA-Z])/g, " ");
    s = s.replace(/\\%/g, " ").replace(/%/g, " ");
  }

  // Text-like groups.
  s = rewriteGroups(s, TEXT_LIKE, (content, _name, before) => {
    const t = content.trim();
    if (t === "") return " ";
    if (/^,$/.test(t)) return ", ";
    if (/^(?:and|or)$/i.test(t)) return ` \\text{ ${t.toLowerCase()} } `;
    if (stripUnits && isUnitPhrase(t) && /[\d})\]]\s*$/.test(before)) return " \uE001";
    // A choice letter keeps its parentheses, so "\textbf{(D)} 17" stays "(D) 17" for the
    // choice rule below (without them it read "D17").
    const choice = /^(\(?)([A-Za-z])(\)?)$/.exec(t);
    if (choice) return choice[1] && choice[3] ? ` (${choice[2]}) ` : ` ${choice[2]} `;
    if (/^[-+]?[\d.,]+$/.test(t)) return t;
    return `\\text{${t.replace(/\s+/g, " ")}}`;
  });
  // A dropped unit may carry a power: "\mbox{ inches}^2".
  s = s.replace(/\uE001\s*\^\s*(?:\{\s*\d\s*\}|\d)/g, " ").replace(/\uE001/g, " ");

  if (stripUnits) s = stripTrailingUnits(s);

  // Thousands separators when the whole answer is one grouped number.
  const grouped = s.trim();
  if (/^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(grouped)) s = grouped.replace(/,/g, "");

  s = s.replace(/\s+/g, " ").trim();

  // Leading "=" or ":".
  s = s.replace(/^[=:]\s*/, "");

  // A sentence around the answer: "the smallest k is 17" → "17".
  const prose = /^(?:[A-Za-z][A-Za-z'-]*\s+){1,8}(?:is|are|equals)\s+(.+)$/.exec(s);
  if (prose && /^[-+(\[\\\d]/.test(prose[1]) && !/\\text\{/.test(s)) s = prose[1];

  // A grouped number as the value of a label or chain: "m+n = 6,250" (no other comma).
  if (/^[^,]*=\s*[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) {
    s = s.replace(/(\d),(?=\d{3}(?!\d))/g, "$1");
  }
  s = dropApproximation(s);
  s = lastSideOfChain(s);

  // Choice letters: "(C)", "C)", "(C) 12".
  const choice = /^\(\s*([A-Z])\s*\)(?:\s.*)?$/.exec(s) ?? /^([A-Z])\)(?:\s.*)?$/.exec(s);
  if (choice) s = choice[1];

  // Single-variable assignment with a constant right-hand side.
  // (Also a function value as label: "f(2) = 7", "P(A) = \frac16".)
  const assign = /^([a-zA-Z](?:_\{?[a-zA-Z0-9]+\}?)?(?:\([^()=,]*\))?|\\[a-zA-Z]+)\s*=\s*([^=<>]+)$/
    .exec(s);
  if (assign && !/[a-zA-Z]/.test(assign[2].replace(/\\[a-zA-Z]+/g, ""))) {
    const lhs = assign[1];
    if (!/^\\(?:pi|infty)$/.test(lhs)) s = assign[2].trim();
  }

  s = stripTrailingPunctuation(s);
  if (/^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, "");
  s = canonicalShortForms(s);
  s = removeSpaces(s);
  return s.replace(/\uE002/g, "\\\\");
}

/**
 * Drops C0 control characters, DEL and the private-use characters U+E000–U+E0FF that the
 * normaliser uses as internal placeholders (newlines and tabs were turned into spaces).
 */
function stripControl(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code >= 32 && code !== 127 && (code < 0xe000 || code > 0xe0ff)) out += s[i];
  }
  return out;
}

function stripTrailingUnits(s: string): string {
  if (s.length > 400) return s;
  // "18 dollars", "5 cm^2", "3 square feet" — bare words after a number.
  const m = /^(.*?[\d}])\s+([a-zA-Z][a-zA-Z ]*?)(\s*\^\s*\{?[23]\}?)?\s*[.]?\s*$/.exec(s);
  if (m === null) return s;
  const words = m[2].trim().split(/\s+/);
  if (words.some((w) => w.length < 2 || !UNIT_WORDS.has(w.toLowerCase()))) return s;
  return m[1];
}

function stripTrailingPunctuation(s: string): string {
  // A backwards scan (a regex anchored at the end would be quadratic on long runs).
  if (/(?:\.\.\.|\\[lc]?dots)$/.test(s)) return s;
  let end = s.length;
  while (end > 0) {
    const ch = s[end - 1];
    if (ch === "\uE002" || ch === " " || ".,;:?".includes(ch)) {
      if (ch === "." && end >= 3 && s.slice(end - 3, end) === "...") break;
      if (ch === "." && s[end - 2] === "\\") end--; // "\."
      end--;
      continue;
    }
    break;
  }
  let start = 0;
  while (start < end && ",;: ".includes(s[start])) start++;
  return s.slice(start, end);
}

/**
 * `\begin{array}{cc}…\end{array}` (also inside `(…)` / `[…]`), `bmatrix`, `Bmatrix`,
 * `vmatrix`, `Vmatrix`, `smallmatrix` and `matrix` are written as `pmatrix`: the same
 * matrix (a `vmatrix` answer is read as its matrix, not its determinant).
 */
function canonicalMatrices(s: string): string {
  if (!s.includes("\\begin")) return s;
  s = s.replace(/\\begin\{array\}\s*\{[^{}]*\}/g, "\\begin{pmatrix}")
    .replace(/\\end\{array\}/g, "\\end{pmatrix}");
  s = s.replace(
    /\\(begin|end)\{(?:bmatrix|Bmatrix|vmatrix|Vmatrix|smallmatrix|matrix)\}/g,
    "\\$1{pmatrix}",
  );
  // Brackets around a single matrix: "(\begin{pmatrix}…\end{pmatrix})".
  const m = /^\s*[([]\s*(\\begin\{pmatrix\}[^]*\\end\{pmatrix\})\s*[)\]]\s*$/.exec(s);
  if (m && m[1].indexOf("\\begin{pmatrix}", 1) < 0) s = m[1];
  return s;
}

/** `\frac{2}{7} \approx 0.29` → `\frac{2}{7}`: the exact side of an approximation. */
function dropApproximation(s: string): string {
  const i = s.indexOf("\\approx");
  if (i <= 0 || s.indexOf("\\approx", i + 1) >= 0) return s;
  const left = s.slice(0, i).trim();
  const right = s.slice(i + 7).trim();
  if (!/^[-+]?(?:\d{1,3}(?:,\d{3})+|\d*)\.?\d+$/.test(right)) return s;
  // Keep the left side only when it says more than a variable name.
  const value = /=([^=]+)$/.exec(left)?.[1] ?? left;
  return /[\d\\]/.test(value) ? left : s;
}

/**
 * `y = 3\cdot 4 - 3 = 9` → `9`: in a chain of two or more top-level `=` the last side is
 * the answer. Lists, inequalities and unbalanced text are left alone.
 */
function lastSideOfChain(s: string): string {
  let depth = 0;
  const eqs: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "{" || ch === "(" || ch === "[") depth++;
    else if (ch === "}" || ch === ")" || ch === "]") depth--;
    else if (depth === 0 && (ch === "," || ch === ";" || ch === "<" || ch === ">")) return s;
    else if (depth === 0 && ch === "=") eqs.push(i);
  }
  if (eqs.length < 2 || /\\(?:le|ge|ne|text|begin)(?![a-zA-Z])/.test(s)) return s;
  const last = s.slice(eqs[eqs.length - 1] + 1).trim();
  return last === "" ? s : last;
}

function canonicalShortForms(s: string): string {
  // \frac12 → \frac{1}{2}; \frac{a}2 → \frac{a}{2}; \frac1{b} → \frac{1}{b}; \sqrt2 → \sqrt{2}
  s = s.replace(/\\frac\s*(\d)\s*(\d)/g, "\\frac{$1}{$2}");
  s = s.replace(/\\frac\s*(\d)\s*\{/g, "\\frac{$1}{");
  s = s.replace(/\\frac\s*(\{[^{}]*\})\s*(\d)/g, "\\frac$1{$2}");
  s = s.replace(/\\sqrt\s*(\d)/g, "\\sqrt{$1}");
  s = s.replace(/(^|[^\d}])\.(\d)/g, (_m, a: string, b: string) => `${a}0.${b}`);
  return s;
}

/** Removes spaces outside `\text{…}`, keeping one where a command name meets a letter. */
function removeSpaces(s: string): string {
  const table = braceTable(s);
  let out = "";
  let i = 0;
  while (i < s.length) {
    const t = s.indexOf("\\text{", i);
    const end = t < 0 ? -1 : table.get(t + 5) ?? -1;
    const stop = t < 0 ? s.length : end < 0 ? t + 6 : t;
    out += squeeze(s.slice(i, stop));
    if (stop === s.length) break;
    if (end < 0) {
      i = stop;
      continue;
    }
    out += s.slice(t, end + 1);
    i = end + 1;
  }
  return out;
}

function squeeze(part: string): string {
  let out = "";
  // 0: plain, 1: just after a backslash, 2: inside a command name such as \pi
  let state = 0;
  for (let i = 0; i < part.length; i++) {
    const ch = part[i];
    if (ch === " ") {
      // keep a space that separates "\cmd" from a following letter
      if (state === 2 && isLetter(part.charCodeAt(i + 1))) {
        out += " ";
        state = 0;
      }
      continue;
    }
    out += ch;
    if (ch === "\\") state = state === 1 ? 0 : 1;
    else if (isLetter(ch.charCodeAt(0))) state = state === 0 ? 0 : 2;
    else state = 0;
  }
  return out;
}
