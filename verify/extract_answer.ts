// Copyright 2025 the halo authors. MIT license.
/**
 * Extraction of the final answer from a model response.
 *
 * @module
 */

import { braceTable } from "./_latex_scan.ts";

/**
 * Names of the answer extractors.
 *
 * - `boxed`: the last well-formed `\boxed{…}` / `\fbox{…}` (braces matched, escaped
 *   braces skipped), also the brace-less `\boxed 5`. A box inside another box is the
 *   answer (`\boxed{\boxed{7}}` → `7`). Several adjacent boxes, separated
 *   only by spaces, `$`, `\(`…`\]`, `,`, `;`, `\quad` or "and"/"or", are one answer: the
 *   list of their contents (`\boxed{4}, \boxed{9}` → `4, 9`; a repeated box counts
 *   once); the marker is then the first of them.
 * - `minerva`: "The final answer is $X$" (Minerva / lm-eval format; "I hope it is
 *   correct." is dropped), the last match.
 * - `answer_line`: DAPO's `Answer: X` (a word of its own, case-insensitive, anywhere as
 *   verl's unanchored regex; the last match; the rest of
 *   the line is the answer, or the next non-empty line when the rest is empty or only
 *   markdown `**`, as DAPO's `Answer\s*:\s*([^\n]+)` reads "Answer:\n18").
 * - `gsm8k`: GSM8K's `#### X` (the last match).
 * - `latex` (eval only): the last `$…$`, `$$…$$`, `\(…\)` or `\[…\]` block; a `$…$`
 *   pair holding running words ("$5 for apples and $") is currency, not a block.
 * - `plain` (eval only): the last non-empty line, after "the answer is" / " is " / "=".
 *   When `plain` is listed, the last sentence "the answer is X" (X starting like a value,
 *   ending at the sentence end or before ", where …") is read before any `latex` block.
 * - `last_number` (eval only, opt-in): the last number in the response.
 *
 * `boxed` comes first; `minerva`, `answer_line` and `gsm8k` are one tier, in which the
 * marker latest in the response wins ("The final answer is 3 … Answer: 7" → 7).
 */
export type ExtractorName =
  | "boxed"
  | "minerva"
  | "answer_line"
  | "gsm8k"
  | "latex"
  | "plain"
  | "last_number";

/** Where the answer must be in `reward` mode: behind an explicit marker. */
export const REWARD_EXTRACTORS: readonly ExtractorName[] = Object.freeze(
  [
    "boxed",
    "minerva",
    "answer_line",
    "gsm8k",
  ] as const,
);

/** Default priority in `eval` mode (like Math-Verify: markers first, then any LaTeX). */
export const EVAL_EXTRACTORS: readonly ExtractorName[] = Object.freeze(
  [
    "boxed",
    "minerva",
    "answer_line",
    "gsm8k",
    "latex",
    "plain",
  ] as const,
);

const MARKER_ONLY: ReadonlySet<ExtractorName> = new Set(REWARD_EXTRACTORS);

/** Marker extractors that are one tier: among them the latest marker wins. */
const LINE_MARKERS: ReadonlySet<ExtractorName> = new Set(["minerva", "answer_line", "gsm8k"]);

/** Options for {@linkcode extractAnswer}. */
export interface ExtractAnswerOptions {
  /**
   * `"reward"` (default) uses only marker extractors; `"eval"` also allows `latex`,
   * `plain` and (when listed) `last_number`.
   */
  mode?: "reward" | "eval";
  /**
   * Extractors in priority order: the first one that finds an answer wins, and within
   * one extractor the last match in the response wins. Adjacent `minerva`,
   * `answer_line` and `gsm8k` entries are one tier: of their matches the one whose
   * marker is latest in the response wins, so a corrected answer after an earlier
   * marker of another type is the one graded (`boxed` stays first). Defaults to
   * {@linkcode REWARD_EXTRACTORS} or {@linkcode EVAL_EXTRACTORS}. In `reward` mode the
   * non-marker extractors are ignored even when listed.
   */
  extractors?: readonly ExtractorName[];
}

/** An extracted answer. */
export interface ExtractedAnswer {
  /** The raw answer text (not yet normalised). */
  answer: string;
  /** The extractor that matched. */
  extractor: ExtractorName;
  /**
   * Character offset (UTF-16 index into the response) of the marker that introduced the
   * graded answer: the `\` of `\boxed`, the `A` of `Answer:`, the first `#` of `####`, the
   * start of "The final answer is", the opening `$` / `\(` / `\[` of a LaTeX block, or the
   * first character of the answer for `plain` and `last_number`.
   */
  markerOffset: number;
  /** Offset of the first character of the answer text. */
  start: number;
  /** Offset just past the answer text. */
  end: number;
}

/**
 * Extracts the final answer of a model response. Never throws; returns `null` when no
 * enabled extractor matches.
 *
 * @param response The model response.
 * @param options Mode and extractor priority.
 * @returns The answer with the extractor that matched and the marker offset, or `null`.
 *
 * @example Usage
 * ```ts
 * import { extractAnswer } from "./extract_answer.ts";
 * import assert from "node:assert/strict";
 *
 * const text = "So x = 2. Thus \\boxed{\\frac{1}{2}}.";
 * const got = extractAnswer(text);
 * assert.equal(got?.answer, "\\frac{1}{2}");
 * assert.equal(got?.extractor, "boxed");
 * assert.equal(got?.markerOffset, text.indexOf("\\boxed"));
 * assert.equal(extractAnswer("The answer is 7")?.answer, undefined);
 * assert.equal(extractAnswer("The answer is 7", { mode: "eval" })?.answer, "7");
 * ```
 */
export function extractAnswer(
  response: string,
  options: ExtractAnswerOptions = {},
): ExtractedAnswer | null {
  try {
    if (typeof response !== "string" || response === "") return null;
    const mode = options.mode ?? "reward";
    const list = options.extractors ?? (mode === "eval" ? EVAL_EXTRACTORS : REWARD_EXTRACTORS);
    for (let i = 0; i < list.length; i++) {
      const name = list[i];
      if (mode === "reward" && !MARKER_ONLY.has(name)) continue;
      if (!LINE_MARKERS.has(name)) {
        // "So the answer is 13, where $x$ is …": with `plain` enabled, the sentence
        // "the answer is X" is read before any LaTeX block (extractor `plain`).
        const got =
          (name === "latex" && list.includes("plain") ? extractAnswerPhrase(response) : null) ??
            EXTRACTORS[name]?.(response);
        if (got) return got;
        continue;
      }
      // A run of line markers (minerva, answer_line, gsm8k) is one tier: the marker
      // latest in the response wins, whatever its type ("Answer: 3 … #### 7" → 7).
      let best: ExtractedAnswer | null = null;
      for (; i < list.length && LINE_MARKERS.has(list[i]); i++) {
        const got = EXTRACTORS[list[i]](response);
        if (got && (best === null || got.markerOffset > best.markerOffset)) best = got;
      }
      i--;
      if (best) return best;
    }
    return null;
  } catch {
    return null;
  }
}

type Extractor = (s: string) => ExtractedAnswer | null;

const EXTRACTORS: Record<ExtractorName, Extractor> = {
  boxed: extractBoxed,
  minerva: extractMinerva,
  answer_line: extractAnswerLine,
  gsm8k: extractGsm8k,
  latex: extractLatex,
  plain: extractPlain,
  last_number: extractLastNumber,
};

/**
 * What may stand between two boxes of one answer: spaces, `$`, `\(`/`\)`/`\[`/`\]`,
 * `,`, `;`, `\quad`, "and", "or" (also in `\text{}`).
 */
const BOX_JOINER =
  /^(?:\s|\$|\\[()[\]]|[,;]|\\q?quad(?![a-zA-Z])|\\[,;]|\\text\{\s*(?:and|or|,)\s*\}|\b(?:and|or)\b)*$/;

/** A label right before a box: "x = \boxed{2}", "$y=$ \boxed{3}". */
const LABEL_TAIL = /(?:^|[\s$(,;])([A-Za-z](?:_\{?\w+\}?)?)\s*=\s*\$?\s*$/;

function extractBoxed(s: string): ExtractedAnswer | null {
  const boxes = boxedSpans(s);
  if (boxes.length === 0) return null;
  // Several boxes next to each other ("\boxed{4}, \boxed{9}", "\boxed{4} and
  // \boxed{9}", "x = \boxed{2} or x = \boxed{-3}") are one answer: the list of their
  // contents, with their labels when every box has one. Otherwise the last box wins.
  const last = boxes[boxes.length - 1];
  const labels: (string | null)[] = [];
  let first = boxes.length - 1;
  // Boxes joined only by "or" are alternatives: "\boxed{-2} or \boxed{1}".
  let allOr = true;
  while (first > 0) {
    const gap = s.slice(boxes[first - 1].end + 1, boxes[first].markerOffset);
    const label = LABEL_TAIL.exec(gap);
    const joiner = label ? gap.slice(0, gap.length - label[0].length) : gap;
    if (!BOX_JOINER.test(joiner)) break;
    if (!/\bor\b/.test(joiner) || /[,;]|\band\b|quad/.test(joiner)) allOr = false;
    labels.unshift(label ? label[1] : null);
    first--;
  }
  if (first === boxes.length - 1) return last;
  labels.unshift(
    LABEL_TAIL.exec(s.slice(Math.max(0, boxes[first].markerOffset - 24), boxes[first].markerOffset))
      ?.[1] ?? null,
  );
  const group = boxes.slice(first);
  const labelled = labels.every((l) => l !== null);
  const items = [
    ...new Set(group.map((b, i) => labelled ? `${labels[i]} = ${b.answer}` : b.answer)),
  ];
  if (items.length === 1) return last;
  return {
    answer: items.join(allOr ? " \\text{ or } " : ", "),
    extractor: "boxed",
    markerOffset: boxes[first].markerOffset,
    start: boxes[first].start,
    end: last.end,
  };
}

/** Every well-formed box, in order (brace-less `\boxed 5` included). */
function boxedSpans(s: string): ExtractedAnswer[] {
  const re = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
  let table: Map<number, number> | null = null;
  const out: ExtractedAnswer[] = [];
  let best: ExtractedAnswer | null = null;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    let k = m.index + m[0].length;
    while (k < s.length && (s[k] === " " || s[k] === "\t")) k++;
    if (s[k] === "{") {
      table ??= braceTable(s);
      const close = table.get(k);
      if (close === undefined) continue;
      const content = s.slice(k + 1, close);
      if (content.trim() === "") continue;
      best = {
        answer: content.trim(),
        extractor: "boxed",
        markerOffset: m.index,
        start: k + 1,
        end: close,
      };
      out.push(best);
    } else if (k > m.index + m[0].length || s[k] === "\\" || /[0-9a-zA-Z]/.test(s[k] ?? "")) {
      // "\boxed 5" / "\boxed\pi": one token.
      const tok = /^(?:\\[a-zA-Z]+|[^\s$]+)/.exec(s.slice(k, k + 200));
      if (tok === null) continue;
      best = {
        answer: tok[0],
        extractor: "boxed",
        markerOffset: m.index,
        start: k,
        end: k + tok[0].length,
      };
      out.push(best);
    }
  }
  // A box inside another box: when the rest of the outer box is only a wrapper
  // ("\boxed{\boxed{7}}", "\fbox{\boxed{7}}", "\boxed{\text{Answer: }\boxed{7}}",
  // "\boxed{x = \boxed{7}}"), the inner box is the answer and the outer one is dropped;
  // otherwise ("\boxed{\boxed{12} + 1}", "\boxed{\frac{\boxed{12}}{5}}") the outer box is
  // the answer, as written (its inner `\boxed` is not a value, so it matches no gold), and
  // the boxes inside it are dropped. Boxes come in marker order and brace-matched spans
  // nest, so a box holds another exactly when the next box starts inside it.
  const drop = new Set<number>();
  for (let i = 0; i + 1 < out.length; i++) {
    const outer = out[i];
    const inner = out[i + 1];
    if (drop.has(i) || inner.markerOffset >= outer.end) continue;
    const innerEnd = s[inner.end] === "}" ? inner.end + 1 : inner.end;
    const rest = s.slice(outer.start, inner.markerOffset) + s.slice(innerEnd, outer.end);
    if (BOX_WRAPPER.test(rest)) drop.add(i);
    else {
      for (let j = i + 1; j < out.length && out[j].markerOffset < outer.end; j++) drop.add(j);
    }
  }
  return out.filter((_, i) => !drop.has(i));
}

/** What may surround a box inside a box for the inner one to be the answer. */
const BOX_WRAPPER =
  /^(?:\s|\$|\\[,;:! ]|\\quad|\\(?:text|mathrm|textbf)\{[^{}]*\}|answer\s*:|[a-zA-Z]\s*=)*$/i;

function trimSpan(s: string, start: number, end: number): [number, number] {
  while (start < end && /\s/.test(s[start])) start++;
  while (end > start && /\s/.test(s[end - 1])) end--;
  return [start, end];
}

function extractMinerva(s: string): ExtractedAnswer | null {
  // Minerva's "final answer is", anywhere (as its unanchored regex): which marker type
  // counts is decided by position among the types (the latest), not by context.
  const re = /(?:the[ \t]+)?final[ \t]+answer[ \t]+is[ \t:]*/gi;
  let last: RegExpExecArray | null = null;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) last = m;
  if (last === null) return null;
  const markerOffset = last.index;
  const from = last.index + last[0].length;
  let start = from;
  let end: number;
  if (s.startsWith("$$", from)) {
    const close = s.indexOf("$$", from + 2);
    if (close < 0) return null;
    start = from + 2;
    end = close;
  } else if (s[from] === "$") {
    const close = findDollar(s, from + 1);
    if (close < 0) return null;
    start = from + 1;
    end = close;
  } else {
    const nl = s.indexOf("\n", from);
    end = nl < 0 ? s.length : nl;
    const hope = s.slice(from, end).search(/\.?[ \t]*I hope it is correct/i);
    if (hope >= 0) end = from + hope;
  }
  [start, end] = trimSpan(s, start, end);
  if (end <= start) return null;
  return {
    answer: s.slice(start, end),
    extractor: "minerva",
    markerOffset,
    start,
    end,
  };
}

function findDollar(s: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === "\\") {
      i++;
      continue;
    }
    if (s[i] === "$") return i;
  }
  return -1;
}

function lastLineMatch(s: string, re: RegExp, name: ExtractorName): ExtractedAnswer | null {
  let best: ExtractedAnswer | null = null;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const groupStart = m.index + m[0].length - m[1].length;
    const [start, end] = trimSpan(s, groupStart, groupStart + m[1].length);
    if (end <= start) continue;
    best = { answer: s.slice(start, end), extractor: name, markerOffset: m.index, start, end };
  }
  return best;
}

/** The rest of an `Answer:` line that counts as empty: spaces and markdown `*`/`_` only. */
const EMPTY_REST = /^[\s*_]*$/;

/** Whether the `answer` at `at` begins an `Answer:` marker: a word of its own. */
function answerMarkerAt(s: string, at: number): boolean {
  return at === 0 || !/[A-Za-z0-9_]/.test(s[at - 1]);
}

function extractAnswerLine(s: string): ExtractedAnswer | null {
  // DAPO / verl `math_dapo` reads `Answer\s*:\s*([^\n]+)`: the `\s*` crosses newlines, so
  // "Answer:\n18" answers 18. When the rest of the line is empty (or only the `**` of a
  // markdown "**Answer:**"), the answer is the next non-empty line. The marker stays at
  // the `A` of `Answer:`.
  // Anywhere, case-insensitive, as verl's unanchored regex ("my answer: 72" too); a
  // marker earlier than another type's ("… my answer: 72\n#### 70") loses to it, since
  // the latest marker among the types wins. The regex finds the marker only; a marker
  // takes the rest of its line and the search goes on after it (the first marker of a
  // line counts, as verl's non-overlapping matches; linear time).
  const re = /answer[ \t]*:/gi;
  let best: ExtractedAnswer | null = null;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    if (!answerMarkerAt(s, m.index)) continue;
    let from = m.index + m[0].length;
    const lineEnd = s.indexOf("\n", from);
    let to = lineEnd < 0 ? s.length : lineEnd;
    re.lastIndex = to;
    if (EMPTY_REST.test(s.slice(from, to))) {
      from = to;
      while (from < s.length && /\s/.test(s[from])) from++;
      if (from >= s.length) continue;
      const nl = s.indexOf("\n", from);
      to = nl < 0 ? s.length : nl;
    }
    const [start, end] = trimSpan(s, from, to);
    if (end <= start) continue;
    best = {
      answer: s.slice(start, end),
      extractor: "answer_line",
      markerOffset: m.index,
      start,
      end,
    };
  }
  return best;
}

function extractGsm8k(s: string): ExtractedAnswer | null {
  return lastLineMatch(s, /####[ \t]*([^\n]*)/g, "gsm8k");
}

function extractLatex(s: string): ExtractedAnswer | null {
  let best: ExtractedAnswer | null = null;
  const noClose = new Set<string>();
  let i = 0;
  while (i < s.length) {
    const ch = s[i];
    let open = "";
    let close = "";
    if (ch === "\\") {
      const next = s[i + 1];
      if (next === "(") [open, close] = ["\\(", "\\)"];
      else if (next === "[") [open, close] = ["\\[", "\\]"];
      else {
        i += 2;
        continue;
      }
    } else if (ch === "$") {
      [open, close] = s[i + 1] === "$" ? ["$$", "$$"] : ["$", "$"];
    } else {
      i++;
      continue;
    }
    if (noClose.has(close)) {
      i += open.length;
      continue;
    }
    const from = i + open.length;
    const end = close === "$" ? findDollar(s, from) : s.indexOf(close, from);
    if (end < 0) {
      noClose.add(close);
      i = from;
      continue;
    }
    if (close === "$" && hasRunningWords(s.slice(from, end))) {
      // "She pays $5 for apples and $3 for pears": a currency sign, not a math block.
      i = from;
      continue;
    }
    const [a, b] = trimSpan(s, from, end);
    if (b > a) {
      best = { answer: s.slice(a, b), extractor: "latex", markerOffset: i, start: a, end: b };
    }
    i = end + close.length;
  }
  return best;
}

/**
 * Running prose inside a `$…$` pair (two adjacent words of letters, one of three or more,
 * outside `\text{…}` and commands): the `$` were currency signs.
 */
function hasRunningWords(content: string): boolean {
  const bare = content.replace(
    /\\(?:text|mbox|mathrm|textbf|textit|operatorname)\s*\{[^{}]*\}/g,
    " ",
  )
    .replace(/\\[a-zA-Z]+/g, " ");
  return /(?:^|[^A-Za-z])(?:[A-Za-z]{3,}\s+[A-Za-z]{2,}|[A-Za-z]{2}\s+[A-Za-z]{3,})(?![A-Za-z])/
    .test(bare);
}

/** Words that end the answer of "the answer is X" ("13, where $x$ is …"). */
const PHRASE_STOP =
  /\n|[.;](?:\s|$)|,\s+(?:where|which|since|because|as|so|and|but|with|given|for|i\.e\.|that)\b/i;

/**
 * The last "the answer is X" sentence (also "final" / "my answer is"), when X starts like a
 * value (digit, sign, `$`, `\`, bracket, or a lone capital choice letter); X ends at the
 * end of the line or sentence or before ", where …". `$X$` / `\(X\)` give their content.
 */
function extractAnswerPhrase(s: string): ExtractedAnswer | null {
  const re = /\b(?:the|my|final)[ \t]+(?:final[ \t]+)?answer[ \t]+is[ \t]*:?[ \t]*/gi;
  let last: RegExpExecArray | null = null;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) last = m;
  if (last === null) return null;
  const from = last.index + last[0].length;
  let start = from;
  let end: number;
  if (s[from] === "$" || s.startsWith("\\(", from)) {
    const open = s.startsWith("$$", from) ? "$$" : s[from] === "$" ? "$" : "\\(";
    const close = open === "\\(" ? "\\)" : open;
    start = from + open.length;
    end = close === "$" ? findDollar(s, start) : s.indexOf(close, start);
    if (end < 0) return null;
  } else {
    if (!/^(?:[-+\d\\([{]|[A-Z](?![A-Za-z]))/.test(s.slice(from, from + 2))) return null;
    const stop = PHRASE_STOP.exec(s.slice(from, from + 300));
    end = stop === null ? Math.min(s.length, from + 300) : from + stop.index;
  }
  let [a, b] = trimSpan(s, start, end);
  while (b > a && /[.,。!]/.test(s[b - 1])) b--;
  if (b <= a || b - a > 300) return null;
  return { answer: s.slice(a, b), extractor: "plain", markerOffset: a, start: a, end: b };
}

function extractPlain(s: string): ExtractedAnswer | null {
  let end = s.length;
  // last non-empty line
  while (end > 0) {
    const nl = s.lastIndexOf("\n", end - 1);
    const lineStart = nl + 1;
    const line = s.slice(lineStart, end);
    if (line.trim() !== "") {
      let start = lineStart;
      const phrase = /(?:answer|result)(?:[ \t]+is)?[ \t]*[:=]?[ \t]*/gi;
      let m: RegExpExecArray | null;
      let cut = -1;
      while ((m = phrase.exec(line)) !== null) {
        cut = m.index + m[0].length;
        if (m[0].length === 0) phrase.lastIndex++;
      }
      if (cut < 0) {
        const is = line.lastIndexOf(" is ");
        const eq = line.lastIndexOf("=");
        cut = Math.max(is >= 0 ? is + 4 : -1, eq >= 0 ? eq + 1 : -1);
      }
      if (cut > 0) start = lineStart + cut;
      let [a, b] = trimSpan(s, start, end);
      while (b > a && /[.。!]/.test(s[b - 1])) b--;
      if (b <= a || b - a > 300) return null;
      return { answer: s.slice(a, b), extractor: "plain", markerOffset: a, start: a, end: b };
    }
    end = nl < 0 ? 0 : nl;
  }
  return null;
}

function extractLastNumber(s: string): ExtractedAnswer | null {
  const re = /-?\d+(?:,\d{3})*(?:\.\d+)?(?:[ \t]*\/[ \t]*\d+)?/g;
  let last: RegExpExecArray | null = null;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) last = m;
  if (last === null) return null;
  return {
    answer: last[0],
    extractor: "last_number",
    markerOffset: last.index,
    start: last.index,
    end: last.index + last[0].length,
  };
}
