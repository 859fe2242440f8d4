/**
 * JSON bodies parsed once, by us, from their exact text (docs/adr/0003, "Exact bodies").
 *
 * `JSON.parse` validates; a second, linear scan runs only when it is needed, to find the exact source text of each
 * element of a top-level array (what the archive stores) and to keep numbers a double cannot hold faithfully
 * (`1e999`, underflow to 0 or a subnormal, integers beyond 2^53 such as `123456789012345678901234567890`) as the
 * string of their source text instead of a rounded number, `Infinity` or `null` (see isFaithfulNumber).
 */

/** A JSON text parsed, with the exact source of the value (and of each element when it is an array). */
export interface ParsedJson {
  value: unknown;
  /** The value's own text: the body without the whitespace around it. */
  source: string;
  /** When `value` is an array: the exact text of each element, in order. */
  elementSources: string[] | undefined;
}

/**
 * Cheap over-approximation of "may hold a number that does not survive a double": an integer part of 16+ digits
 * right after what can precede a JSON number (an integer beyond 2^53 needs them; a 17-digit fraction such as
 * `2.2857142857142856` does not count), an exponent of 3+ digits, or 15+ zeros right after a decimal point (the
 * only ways out of the normal double range). Matches inside strings only cost the slow path. No look-behind:
 * with one, the test cost as much as JSON.parse itself.
 */
const MAYBE_UNFAITHFUL = /(?:^|[:,[\s])-?\d{16}|[eE][+-]?\d{3}|\.0{15}/;

/** Parses a JSON text as `JSON.parse` does, except that unfaithful numbers keep their source text. Throws SyntaxError. */
export function parseJsonText(text: string): ParsedJson {
  let value = JSON.parse(text) as unknown;
  const source = text.trim(); // outside a valid JSON value only JSON whitespace can appear
  const suspicious = MAYBE_UNFAITHFUL.test(text);
  const isArray = Array.isArray(value);
  if (!suspicious && !isArray) return { value, source, elementSources: undefined };
  const scan = scanJson(source, isArray);
  if (scan.unfaithful.length > 0) value = JSON.parse(quoteNumbers(source, scan.unfaithful)) as unknown;
  return { value, source, elementSources: isArray ? scan.elements : undefined };
}

interface Scan {
  /** [start, end) of each number token to keep as text. */
  unfaithful: [number, number][];
  /** Exact text of each top-level array element (when asked). */
  elements: string[];
}

const isWhitespace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isNumberChar = (c: number) =>
  (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x45 || c === 0x65;

/** One pass over a text already known to be valid JSON: number tokens, and top-level element boundaries. */
function scanJson(text: string, elementsWanted: boolean): Scan {
  const scan: Scan = { unfaithful: [], elements: [] };
  let depth = 0;
  let elementStart = -1;
  const endElement = (end: number) => {
    let last = end;
    while (last > elementStart && isWhitespace(text.charCodeAt(last - 1))) last--;
    if (elementStart >= 0 && last > elementStart) scan.elements.push(text.slice(elementStart, last));
    elementStart = -1;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (elementsWanted && depth === 1 && elementStart < 0 && !isWhitespace(c) && c !== 0x2c && c !== 0x5d)
      elementStart = i;
    if (c === 0x22) {
      // A string: skip to its closing quote (escapes are pairs).
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x5c) i++;
        else if (s === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
    } else if (c === 0x5d || c === 0x7d) {
      if (elementsWanted && depth === 1) endElement(i);
      depth--;
    } else if (c === 0x2c) {
      if (elementsWanted && depth === 1) endElement(i);
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < text.length && isNumberChar(text.charCodeAt(end))) end++;
      if (!isFaithfulNumber(text.slice(i, end))) scan.unfaithful.push([i, end]);
      i = end - 1;
    }
  }
  return scan;
}

/** The text with each listed number token turned into a string literal of itself. */
function quoteNumbers(text: string, tokens: readonly [number, number][]): string {
  let out = '';
  let from = 0;
  for (const [start, end] of tokens) {
    out += `${text.slice(from, start)}"${text.slice(start, end)}"`;
    from = end;
  }
  return out + text.slice(from);
}

/** The smallest positive normal double (2^-1022): below it a double has fewer than 53 bits of precision. */
const MIN_NORMAL = 2 ** -1022;

/**
 * False only when holding the token as a JavaScript number loses what it says: it is outside the double range
 * (`1e999` would be Infinity), a non-zero value that underflows to 0 or loses digits to a subnormal
 * (`1e-400`, `1.2345678901234567e-320`), or an integer token (no `.` or exponent) beyond 2^53 whose value the
 * nearest double does not print back (`9007199254740993`, an id or a counter). Any other token is a measurement,
 * and the nearest double is what it means: `0.33333333333333331` (printf `%.17g`, cJSON) is faithful, as are
 * `1.50`, `1.5e0` and `0.1`.
 */
export function isFaithfulNumber(token: string): boolean {
  const n = Number(token);
  if (!Number.isFinite(n)) return false;
  // The common case first, without building any text: a normal, non-zero measurement or a safe integer.
  if (n === 0) return canonicalDecimal(token) === '0';
  if (Math.abs(n) < MIN_NORMAL) return canonicalDecimal(token) === canonicalDecimal(String(n));
  if (!Number.isSafeInteger(n) && /^-?\d+$/.test(token))
    return canonicalDecimal(token) === canonicalDecimal(String(n));
  return true;
}

/** `[-]digits e exponent` with no leading or trailing zeros in `digits`; `0` for any zero. */
function canonicalDecimal(token: string): string {
  const match = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(token);
  if (!match) return token;
  const [, sign = '', int = '', frac = '', exp = '0'] = match;
  let digits = int + frac;
  let exponent = Number(exp) - frac.length;
  const lead = /^0*/.exec(digits)?.[0].length ?? 0;
  digits = digits.slice(lead);
  if (digits === '') return '0';
  const trimmed = digits.replace(/0+$/, '');
  exponent += digits.length - trimmed.length;
  return `${sign}${trimmed}e${exponent}`;
}
