// Copyright 2025 the halo authors. MIT license.
// The noun words after a plain-number answer that the problem text licenses
// ("#### 12 bananas" for a problem about bananas). A word list alone cannot tell a noun
// from a word that changes the value ("12 reciprocal", "12 less", "12 sixths", "12 false"
// were all rewarded by such a rule; reverted in d25e67f), so a word is dropped only when
// the problem itself writes it right after a count ("5 red apples", "How many apples are
// left") AND it is not in the deny list below (words, and shapes: prefixed units, -ward(s),
// over-/under- words, data-size short forms).
//
// The deny list governs this rule only. The normaliser's unit-word list (verify/_units.ts,
// UNIT_WORDS) is separate and drops its own words after a number whether or not a problem
// is given, before `verify` tries this rule: "times", "square", "cubic", "sq", "cents",
// "percent", "min", "dollars" and the like, so `verify` reads "#### 12 times" as 12 ("How many
// times…") although "times" and "square" are denied here. `stripProblemNouns` alone (the
// maj@k votes) keeps them; the votes compare with `mathEqual`, which drops them too.

import type { PreparedGold } from "./prepare_gold.ts";

/** A set of the words in the given strings (separated by white space). */
function wordSet(...lists: string[]): ReadonlySet<string> {
  return new Set(lists.join(" ").trim().split(/\s+/));
}

/** Longest problem text read (characters); the rest is ignored. */
const MAX_PROBLEM = 20000;
/** Most words dropped. */
const MAX_WORDS = 3;
/** Shortest word dropped: one- and two-letter words are variables or connectives. */
const MIN_LETTERS = 3;

/**
 * Words that change the value or the meaning of the number before them, never dropped by
 * this rule (also in any singular/plural variant; some, such as "times", "percent" and
 * "cents", are unit words that the normaliser drops regardless, see above): comparatives, operations, multipliers and scale
 * words, fractions, number words, booleans and negation, rates, signs and directions,
 * changes and hedges, coin and data units of another scale. Not "left": as "remaining" it
 * is what 42 GSM8K questions ask for ("How many apples are left?", 92 of the 93 that use
 * it); as a direction ("8 steps to the left") it follows no count, so it is not licensed.
 */
const DENY: ReadonlySet<string> = wordSet(
  // comparisons and bounds
  `less more fewer greater lesser larger smaller bigger higher lower older younger
   longer shorter taller heavier lighter faster slower cheaper earlier later farther
   further closer nearer wider narrower deeper thicker thinner stronger weaker richer
   poorer warmer colder hotter cooler louder sooner quicker newer brighter darker easier
   harder simpler softer busier costlier pricier safer riskier better worse best worst
   latest earliest early late overdue extra additional than least most fewest
   maximum maximal minimum minimal upper over under above below beyond within between
   through upto exceed exceeds difference shy short shortfall too many much enough few
   several some any all only just exactly about around approximately approx roughly
   nearly almost circa ish odd even maybe perhaps probably possibly likely unlikely
   rounded approximate estimate estimated something tops senior junior elder excluding
   including included excluded inclusive exclusive pretax untaxed unless otherwise
   whereas although though`,
  // operations
  `times plus minus divided multiplied over per mod modulo and nor but with without
   except besides instead versus for from into out off then squared cubed root sqrt
   power exponent factorial choose reciprocal inverse inverted opposite negative
   negated negation positive absolute quotient remainder ratio ratios fraction
   fractions proportion odds chance probability percent percents percentage pct
   percentile permille promille basis bps ppm ppb decimal binary octal hex hexadecimal
   repeating recurring repeated overline complement complementary supplement
   supplementary add added adding subtract subtracted subtracting deduct deducted
   deducting withdraw withdrew withdrawn`,
  // multipliers, scale and collective words
  `double doubled triple tripled quadruple quadrupled quintuple twice thrice halved
   single twin triplet pair couple brace trio quartet quintet sextet octet dozen score
   gross ream grand lakh crore myriad hundred thousand million billion trillion
   quadrillion zillion gazillion kilo mega giga tera milli micro nano centi deci deca
   hecto decade century centuries millennium millennia fortnight byte kilobyte megabyte
   gigabyte terabyte bit nibble penny pennies pence nickel dime quarter cent whole half halves
   ones tens doz mln bln trn googol googolplex tonne`,
  // coins and other subunits of a currency
  `centime centimo centavo kopeck kopek paisa paise pfennig groschen farthing shilling
   halfpenny sou satang sen`,
  // number words
  `zero nil nought naught none one two three four five six seven eight nine ten eleven
   twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty
   forty fifty sixty seventy eighty ninety once teen`,
  // truth, negation, validity
  `true false yes not never nothing neither either wrong incorrect correct invalid
   impossible undefined unknown infinite infinity infty nan null void imaginary complex
   isnt arent wasnt werent doesnt dont didnt cant cannot wont nope`,
  // rates
  `each every everyday apiece daily weekly monthly yearly annually hourly nightly biweekly
   quarterly annual biannual biannually biennial biennially triennial triennially
   semiannual semiannually bimonthly semimonthly semiweekly fortnightly perennially`,
  // signs, directions, time relations, change
  `north south east west northeast northwest southeast southwest backward backwards
   forward forwards upward upwards downward downwards down clockwise counterclockwise
   anticlockwise uphill downhill upstream downstream upwind downwind upriver downriver
   underground aboveground overground overhead bce bc negatively positively behind ahead
   ago before after since until till hence now increase
   increased decrease decreased reduction reduced raise raised rise dropped gain gained
   profit loss lost lose deficit surplus debt owe owes owed owing discount markup
   markdown decline declined grew grow grown shrank shrink shrunk`,
);

/**
 * Words never dropped by this rule as written, whose plural is a noun to count: "12 square"
 * may be 12² (the normaliser's unit list drops "square" regardless, see above)
 * but "12 squares" are squares; function names ("log"/"logs"), Greek letters, LaTeX words,
 * and nouns that are also verbs of change ("drop"/"drops", "rose"/"roses").
 */
const DENY_WRITTEN: ReadonlySet<string> = wordSet(
  `square cube point product sum base bar net mill rose fell fall drop back right max
   min abs log exp sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh gcd lcm
   floor ceil ceiling frac dfrac tfrac cdot div text boxed mathrm alpha beta gamma
   delta epsilon zeta eta theta iota kappa lambda sigma tau upsilon phi chi psi omega
   omicron rho mil bil thou`,
);

/**
 * Ordinals, in any number of words written together ("sixth", "twentyfirst", "hundredths"),
 * and any fraction word ending in -ths: "12 sixths" is 2, not 12.
 */
const ORDINAL =
  /^(?:[a-z]*(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|teenth|tieth|hundredth|thousandth|illionth)|nth|zeroth)s?$/;
/** A scale word inside another word: "hundredweight", "halfdozen", "thousandfold". */
const SCALE = /dozen|hundred|thousand|illion|percent/;
/**
 * A unit with a metric or binary prefix ("milliliters", "kilowatts", "gigabits", "mebibytes"):
 * another scale than the unit the problem may ask in, so dropped only where the problem asks
 * in that very unit and uses no other scale of it (see `unitAsked`). Only a prefix followed
 * by a unit is matched, so "exams", "petals", "decimals", "centipedes" and "microwaves" are
 * nouns. Groups: the prefix, the unit (singular).
 */
const PREFIXED_UNIT = new RegExp(
  "^(yocto|zepto|atto|femto|pico|nano|micro|milli|centi|deci|deca|deka|hecto|kilo|mega|giga|" +
    "tera|peta|exa|zetta|yotta|kibi|mebi|gibi|tebi|pebi|exbi)(meter|metre|gram|gramme|liter|" +
    "litre|watt|watthour|byte|bit|second|sec|hertz|joule|volt|amp|ampere|ohm|pascal|calorie|" +
    "tonne|ton|newton|mole|lumen|farad|tesla|weber|coulomb|siemens|sievert|gray|kelvin|" +
    "candela|lux|bar|parsec|flop|bps)(?:s|es)?$",
);
/**
 * Short forms of data sizes and rates ("GiB", "kbps", "Mbit"), of any case: their scale is
 * in the letters.
 */
const DATA_SHORT =
  /^(?:[kmgtpezy]i?b|[kmgtpezy]i?bs|[kmgtpezy]?bps|[kmgtpezy]bits?|[kmgtpezy]ibits?)$/;
/**
 * Directions written with -ward(s) ("westward", "homewards", "inward"); "award", "reward",
 * "steward", "coward" and a hospital "ward" are nouns.
 */
const WARD = /^(?!(?:re|ste|co)wards?$)[a-z]{2,}wards?$/;
/**
 * Words of too much or too little ("overpaid", "underweight", "overcharged",
 * "undercounted"); nouns of clothing and places ("overalls", "undershirt", "overpass")
 * and a few others are kept.
 */
const OVER_UNDER = /^(?:over|under)[a-z]{2,}$/;
const OVER_UNDER_NOUNS: ReadonlySet<string> = wordSet(
  `overall overalls overcoat overcoats overpass overpasses underpass underpasses underwear
   undershirt undershirts underdog underdogs overture overtures undergraduate
   undergraduates understudy understudies underwriter underwriters overseer overseers
   overtime`,
);

/** The time unit, not the ordinal. */
const SECONDS: ReadonlySet<string> = new Set(["second", "seconds"]);
/** Plural nouns ending in -ths that are no fraction. */
const THS_NOUNS: ReadonlySet<string> = wordSet(
  `months baths paths booths cloths moths mouths youths births deaths truths lengths
   widths depths sloths`,
);

/** Irregular plurals, both ways. */
const IRREGULAR: ReadonlyArray<readonly [string, string]> = [
  ["man", "men"],
  ["woman", "women"],
  ["child", "children"],
  ["person", "people"],
  ["foot", "feet"],
  ["tooth", "teeth"],
  ["goose", "geese"],
  ["mouse", "mice"],
  ["ox", "oxen"],
];

/** The singulars a plural may have: "puppies" → "puppy", "boxes" → "box", "apples" → "apple". */
function singulars(w: string): string[] {
  const out: string[] = [];
  if (w.endsWith("ies")) out.push(`${w.slice(0, -3)}y`);
  if (w.endsWith("ves")) out.push(`${w.slice(0, -3)}f`, `${w.slice(0, -3)}fe`);
  if (/(?:s|x|z|ch|sh|o)es$/.test(w)) out.push(w.slice(0, -2));
  if (w.endsWith("s") && !w.endsWith("ss")) out.push(w.slice(0, -1));
  for (const [one, many] of IRREGULAR) if (w === many) out.push(one);
  return out;
}

/** The plural of a singular: "puppy" → "puppies", "box" → "boxes", "apple" → "apples". */
function plural(w: string): string {
  for (const [one, many] of IRREGULAR) if (w === one) return many;
  if (/[^aeiou]y$/.test(w)) return `${w.slice(0, -1)}ies`;
  if (/(?:s|x|z|ch|sh)$/.test(w)) return `${w}es`;
  if (w.endsWith("fe")) return `${w.slice(0, -2)}ves`;
  if (w.endsWith("f")) return `${w.slice(0, -1)}ves`;
  return `${w}s`;
}

/** The word and its simple singular/plural variants ("box"/"boxes", "puppy"/"puppies"). */
function variants(w: string): string[] {
  // Both "-s" and "-es"/"-ves" plurals are tried for a singular: "tomatos"/"tomatoes",
  // "roofs"/"rooves" occur in real text.
  return [w, plural(w), `${w}s`, `${w}es`, ...singulars(w)];
}

/** Whether a word may never be dropped (as written, or its singular). */
function denied(w: string): boolean {
  if (DENY.has(w) || DENY_WRITTEN.has(w) || w.endsWith("fold") || SCALE.test(w)) return true;
  if (DATA_SHORT.test(w) || WARD.test(w)) return true;
  if (OVER_UNDER.test(w) && ![w, ...singulars(w)].some((s) => OVER_UNDER_NOUNS.has(s))) {
    return true;
  }
  if (w.endsWith("ths") && !THS_NOUNS.has(w)) return true;
  // The singular of what is written: "dozens", "pairs", "hundreds", "twenties", "halves".
  return [w, ...singulars(w)].some((s) => DENY.has(s) || (ORDINAL.test(s) && !SECONDS.has(s)));
}

/**
 * The words of the problem's prose, lower case: runs of letters delimited by spaces or
 * sentence punctuation on both sides. A word glued to `$`, `\`, braces, digits or operators
 * (`$abc$`, `\sqrt`, `3x`) is math, not prose, and is left out.
 */
function proseWords(problem: string): Set<string> {
  const words = new Set<string>();
  const text = problem.length > MAX_PROBLEM ? problem.slice(0, MAX_PROBLEM) : problem;
  for (const token of text.split(/[\s.,;:!?"'’‘“”()\[\]\u2013\u2014-]+/)) {
    if (token.length >= MIN_LETTERS && /^[A-Za-z]+$/.test(token)) words.add(token.toLowerCase());
  }
  return words;
}

/** Number words after which the problem's next words name what is counted. */
const NUMBER_WORDS: ReadonlySet<string> = wordSet(
  `one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
   sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
   hundred thousand million billion dozen`,
);

/**
 * The word windows that name what the problem counts: up to three words right after a
 * number (`5 red apples`, `$3 bags`, `five puppies`) or after "how many", "how much" or
 * "number of", up to punctuation, math or the next number; one set of lower-case words
 * per window.
 */
function countedWindows(problem: string): Set<string>[] {
  const windows: Set<string>[] = [];
  const text = problem.length > MAX_PROBLEM ? problem.slice(0, MAX_PROBLEM) : problem;
  let open = 0;
  let prev = "";
  for (const raw of text.split(/[\s\u2013\u2014-]+/)) {
    const plain = /^[A-Za-z]+$/.test(raw); // most tokens: no punctuation to strip
    const core = plain ? raw : raw.replace(/^["'’‘“”(\[]+/, "");
    const word = plain ? raw : core.replace(/[.,;:!?"'’‘“”)\]]+$/, "");
    const lower = word.toLowerCase();
    const ends = word.length < core.length;
    if (/^\$?\d[\d,]*(?:\.\d+)?%?$/.test(word) || NUMBER_WORDS.has(lower)) {
      open = 3;
      windows.push(new Set());
    } else if (plain || /^[A-Za-z]+$/.test(word)) {
      if (open > 0) {
        windows[windows.length - 1].add(lower);
        open--;
      }
      if (
        (prev === "how" && (lower === "many" || lower === "much")) ||
        (prev === "number" && lower === "of")
      ) {
        open = 3;
        windows.push(new Set());
      }
    } else {
      open = 0;
    }
    if (ends) open = 0;
    prev = lower;
  }
  return windows;
}

/**
 * Whether a prefixed unit ("milliliters") may be dropped: the problem asks in it ("How many
 * milliliters", "in milliliters") and its prose holds no other scale of the same unit
 * ("liters", "kiloliters"). `false` for any word that is not a prefixed unit.
 */
function unitAsked(w: string, problem: string, prose: ReadonlySet<string>): boolean {
  const m = PREFIXED_UNIT.exec(w);
  if (m === null) return false;
  const bare = variants(m[2]);
  for (const p of prose) {
    const o = PREFIXED_UNIT.exec(p);
    if (o === null ? bare.includes(p) : o[2] === m[2] && o[1] !== m[1]) return false;
  }
  const text = problem.length > MAX_PROBLEM ? problem.slice(0, MAX_PROBLEM) : problem;
  return new RegExp(String.raw`\b(?:how\s+many|in)\s+(?:${variants(w).join("|")})\b`, "i")
    .test(text);
}

/** A plain number with optional sign, dollar sign, thousands commas and decimals. */
const NUMBER = String.raw`-?(?:\\?\$\s*)?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)`;
const PLAIN_NUMBER = new RegExp(`^${NUMBER}$`);

/**
 * Whether a (gold) answer is written as a plain number: optional minus and dollar sign,
 * thousands commas, decimals (`12`, `-3.5`, `$1,250`); not `12\%`, `\frac{24}{2}`, `12x`.
 */
export function isPlainNumber(text: string): boolean {
  return typeof text === "string" && text.length <= 64 && PLAIN_NUMBER.test(text.trim());
}

/**
 * Whether answers to this gold may have the problem's nouns dropped: the gold is written as
 * a plain number ({@linkcode isPlainNumber}) with an exact value. The one gate shared by
 * `verify` (its `problem` option) and the maj@k votes of `deno task eval` (`voteClasses`), so
 * an answer scored with its nouns dropped also votes with them dropped, and no other does.
 *
 * @param gold The prepared gold answer (see `prepareGold`).
 * @returns `true` when {@linkcode stripProblemNouns} applies to answers to this gold.
 *
 * @example Usage
 * ```ts
 * import { goldTakesNouns } from "./problem_nouns.ts";
 * import { prepareGold } from "./prepare_gold.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(goldTakesNouns(prepareGold("1,250")), true);
 * assert.equal(goldTakesNouns(prepareGold("1{,}250")), false);
 * assert.equal(goldTakesNouns(prepareGold("\\frac{24}{2}")), false);
 * ```
 */
export function goldTakesNouns(gold: PreparedGold): boolean {
  return gold.node !== null && gold.literal !== null && isPlainNumber(gold.answer);
}

/** One to three words of letters. */
const WORDS = `[A-Za-z]+(?:\\s+[A-Za-z]+){0,${MAX_WORDS - 1}}`;
/** White space or a LaTeX space (`\,`, `\ `, `~`). */
const SPACE = String.raw`(?:\s|\\[,;:! ]|~)`;
const TEXT = String.raw`\\(?:text|textrm|textnormal|textit|textbf|mbox)`;
/** `12 bananas`, `$1,250 red apples.`, `12 \text{ bananas}`, `12\,\text{bananas}`. */
const SHAPE = new RegExp(
  String.raw`^(${NUMBER})(?:${SPACE}+(${WORDS})|${SPACE}*${TEXT}\s*\{\s*(${WORDS})\s*\})[.!]?$`,
);

/**
 * The plain number of an answer written as a plain number followed by at most three
 * letter-only words that the problem's prose writes together right after a count: all
 * within the (up to) three words after one number or number word, "how many", "how much" or
 * "number of", before punctuation or math (case-insensitive, up to a simple singular/plural
 * variant; "5 red apples" licenses "red apples", "How many apples are left" licenses
 * "apples left"), and none of which is a deny-listed word; otherwise `null`.
 * `("12 bananas", "… How many bananas …")` → `"12"`; `"12 dozen"`, `"12 sixths"`,
 * `"12 less"`, `"12 minutes early"`, `"12 x"` and words the problem does not write after a
 * count (`"12 steps left"` for "8 steps to the left") → `null`. A unit with a metric or
 * binary prefix (`"milliliters"`) is dropped only where the problem asks in it ("How many
 * milliliters", "in milliliters") and uses no other scale of it. `verify` uses it with its
 * `problem` option; `deno task eval` uses it to let "12 bananas" and "12" vote together.
 *
 * @param answer The extracted answer text (e.g. `"12 bananas"`).
 * @param problem The problem text whose prose licenses the words.
 * @returns The number alone, or `null` when the answer does not have that shape or a word
 * is not licensed.
 *
 * @example Usage
 * ```ts
 * import { stripProblemNouns } from "./problem_nouns.ts";
 * import assert from "node:assert/strict";
 *
 * const problem = "Tom has 5 bananas and buys 7 more. How many bananas does he have?";
 * assert.equal(stripProblemNouns("12 bananas", problem), "12");
 * assert.equal(stripProblemNouns("12 more", problem), null);
 * assert.equal(stripProblemNouns("12 apples", problem), null);
 * ```
 */
export function stripProblemNouns(answer: string, problem: string): string | null {
  if (typeof answer !== "string" || typeof problem !== "string") return null;
  const s = answer.trim();
  if (s.length > 200 || problem.trim() === "") return null;
  const m = SHAPE.exec(s);
  if (m === null) return null;
  const words = (m[2] ?? m[3]).toLowerCase().split(/\s+/);
  if (words.some((w) => w.length < MIN_LETTERS || denied(w))) return null;
  const prose = proseWords(problem);
  if (!words.every((w) => variants(w).some((v) => prose.has(v)))) return null;
  // All of them in one window after a count ("5 red apples", "How many apples are left").
  const licensed = (window: ReadonlySet<string>) =>
    words.every((w) => variants(w).some((v) => prose.has(v) && window.has(v)));
  if (!countedWindows(problem).some(licensed)) return null;
  if (words.some((w) => PREFIXED_UNIT.test(w) && !unitAsked(w, problem, prose))) return null;
  return m[1];
}
