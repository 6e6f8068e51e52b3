// Copyright 2025 the halo authors. MIT license.
// Internal: words that are dropped when they follow a number ("5 cm", "10\text{ units}").
// Only whole words are matched, and only after a number or a closing brace, so a text
// answer such as "\text{east}" is never touched.

/** Lower-case unit / counter words removed after a numeric answer. */
export const UNIT_WORDS: ReadonlySet<string> = new Set([
  "unit",
  "units",
  "sq",
  "square",
  "cubic",
  "cu",
  "mm",
  "cm",
  "m",
  "km",
  "in",
  "inch",
  "inches",
  "ft",
  "foot",
  "feet",
  "yd",
  "yard",
  "yards",
  "mi",
  "mile",
  "miles",
  "meter",
  "meters",
  "metre",
  "metres",
  "centimeter",
  "centimeters",
  "centimetre",
  "centimetres",
  "millimeter",
  "millimeters",
  "kilometer",
  "kilometers",
  "mph",
  "kph",
  "kmh",
  "degree",
  "degrees",
  "deg",
  "radian",
  "radians",
  "rad",
  "dollar",
  "dollars",
  "usd",
  "cent",
  "cents",
  "euro",
  "euros",
  "percent",
  "percentage",
  "pct",
  "second",
  "seconds",
  "sec",
  "secs",
  "s",
  "minute",
  "minutes",
  "min",
  "mins",
  "hour",
  "hours",
  "hr",
  "hrs",
  "h",
  "day",
  "days",
  "week",
  "weeks",
  "month",
  "months",
  "year",
  "years",
  "yr",
  "yrs",
  "g",
  "gram",
  "grams",
  "kg",
  "kilogram",
  "kilograms",
  "mg",
  "lb",
  "lbs",
  "pound",
  "pounds",
  "oz",
  "ounce",
  "ounces",
  "ton",
  "tons",
  "l",
  "liter",
  "liters",
  "litre",
  "litres",
  "ml",
  "gallon",
  "gallons",
  "quart",
  "quarts",
  "pint",
  "pints",
  "cup",
  "cups",
  "people",
  "persons",
  "students",
  "ways",
  "points",
  "times",
  "items",
  "pieces",
  "apples",
  "marbles",
  "balls",
  "books",
  "cookies",
  "eggs",
  "pages",
  "cars",
  "boxes",
  "dogs",
  "cats",
  "sides",
  "diagonals",
  "handshakes",
  "games",
  "tickets",
  "coins",
  "miles per hour",
]);

/** Whether every word of `text` (split on spaces, ^2/^3 and "per") is a unit word. */
export function isUnitPhrase(text: string): boolean {
  const words = text.toLowerCase().replace(/\^\{?[23]\}?/g, " ").replace(/[.]/g, " ").trim()
    .split(/\s+/).filter((w) => w !== "" && w !== "per");
  return words.length > 0 && words.length <= 4 && words.every((w) => UNIT_WORDS.has(w));
}

/**
 * Words never dropped after a number: connectives of a list ("12 or 13"), operators,
 * number words ("12 hundred", "12 and a half"), functions and constants.
 */
const KEEP_WORDS: ReadonlySet<string> = new Set([
  "or",
  "and",
  "nor",
  "not",
  "no",
  "plus",
  "minus",
  "times",
  "over",
  "divided",
  "mod",
  "modulo",
  "squared",
  "cubed",
  "factorial",
  "root",
  "roots",
  "power",
  "point",
  "half",
  "halves",
  "third",
  "thirds",
  "quarter",
  "quarters",
  "fourth",
  "fourths",
  "fifth",
  "fifths",
  "tenth",
  "tenths",
  "hundredth",
  "hundredths",
  "dozen",
  "dozens",
  "hundred",
  "hundreds",
  "thousand",
  "thousands",
  "million",
  "millions",
  "billion",
  "billions",
  "trillion",
  "zero",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
  "ten",
  "eleven",
  "twelve",
  "twenty",
  "thirty",
  "forty",
  "fifty",
  "sixty",
  "seventy",
  "eighty",
  "ninety",
  "pi",
  "sqrt",
  "sin",
  "cos",
  "tan",
  "cot",
  "sec",
  "csc",
  "log",
  "ln",
  "exp",
  "inf",
  "infinity",
  "infty",
  "undefined",
  "none",
  "base",
  "per",
  "than",
  "least",
  "most",
  "at",
  "only",
  "i",
  "e",
]);

/** A text group at the end: `\text{ bananas}`, `\mbox{each}`, `\textbf{ apples}`. */
const TRAILING_TEXT =
  /\s*\\(?:text|textrm|textbf|textit|textnormal|mbox|mathrm)\s*\{([^{}]*)\}\s*$/;
/** A bare word at the end, after a space. */
const TRAILING_WORD = /\s+([A-Za-z][A-Za-z'-]*)\s*$/;

/**
 * The answer without a trailing run of plain words after a number, for a gold that is a
 * plain number: `12 bananas` → `12`, `\$12 \text{ each}` → `\$12` (Hendrycks'
 * `_remove_right_units` drops everything after `\text{ `). Only letter-only words are
 * dropped: a word of a `\text{}` group of two or more letters, or a bare word of three
 * or more letters (or a unit word), never a connective, operator, number word, function
 * or constant ({@linkcode KEEP_WORDS}), so "12 \text{ or } 13", "12 x", "12\pi",
 * "12 \sqrt{2}" and "12 hundred" stay as they are. What remains must end in a digit
 * (then optionally `}` / `$` / `\)`). Returns `null` when nothing is dropped.
 */
export function stripTrailingWords(answer: string): string | null {
  if (answer.length > 400) return null;
  let s = answer.replace(/[\s.!;,]+$/, "");
  let dropped = 0;
  for (let k = 0; k < 6; k++) {
    const t = TRAILING_TEXT.exec(s);
    if (t) {
      const words = t[1].trim().split(/\s+/).filter((w) => w !== "");
      if (words.length === 0 || !words.every((w) => droppable(w, 2))) return null;
      s = s.slice(0, t.index);
      dropped++;
      continue;
    }
    const w = TRAILING_WORD.exec(s);
    if (w) {
      if (!droppable(w[1], 3)) break;
      s = s.slice(0, w.index);
      dropped++;
      continue;
    }
    break;
  }
  if (dropped === 0) return null;
  if (!/\d\s*(?:\}|\$|\\\))?\s*$/.test(s)) return null;
  return s;
}

function droppable(word: string, minLetters: number): boolean {
  const w = word.toLowerCase();
  if (!/^[a-z][a-z'-]*$/.test(w) || KEEP_WORDS.has(w)) return false;
  return w.replace(/['-]/g, "").length >= minLetters || UNIT_WORDS.has(w);
}
