import { inspect, type InspectOptions } from 'node:util';

/** Most characters of one string in a log line; the rest is counted, not printed. */
const MAX_STRING_LENGTH = 1_000;

/** Bounded, one-line rendering: a log line never grows with a hostile payload. */
const OPTIONS: InspectOptions = {
  depth: 4,
  breakLength: Infinity,
  compact: true,
  maxArrayLength: 20,
  maxStringLength: MAX_STRING_LENGTH,
};

/**
 * Characters that end or rewrite a line in a log file or a terminal: C0 controls except tab, DEL, NEL and the
 * Unicode line and paragraph separators.
 */
// eslint-disable-next-line no-control-regex
const LINE_BREAKING = /[\u0000-\u0008\u000a-\u001f\u007f\u0085\u2028\u2029]/g;

const escapeChar = (c: string) =>
  c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * A string as log text: at most MAX_STRING_LENGTH characters (then how many more there were) and no character
 * that could start a forged line (`\n` → `\\n`, `\r` → `\\r`, other controls → `\\uXXXX`).
 */
export function formatLogString(text: string): string {
  const bounded =
    text.length > MAX_STRING_LENGTH
      ? `${text.slice(0, MAX_STRING_LENGTH)}… (${text.length - MAX_STRING_LENGTH} more characters)`
      : text;
  return bounded.replace(LINE_BREAKING, escapeChar);
}

/**
 * One value as log text, never more than one line: strings bounded and escaped, errors as `Name: message`,
 * anything else through util.inspect with line breaks escaped (nested strings, custom inspect functions).
 * Never throws.
 */
export function formatLogValue(value: unknown): string {
  if (typeof value === 'string') return formatLogString(value);
  try {
    if (value instanceof Error) return formatLogString(`${value.name}: ${value.message}`);
    return inspect(value, OPTIONS).replace(LINE_BREAKING, escapeChar);
  } catch {
    // A custom inspect function or a hostile Proxy threw: say what it was, not what it holds.
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return '[unprintable value]';
    }
  }
}

/**
 * The one formatter of every log handler in the embedded runtime: the arguments of a `context.log(...)` call
 * joined by spaces. Safe for any value (null-prototype objects, BigInt, cycles, symbols); it adds nothing of its
 * own, and format specifiers (`%s`) in a string are left alone, so a device-supplied string cannot reshape a line.
 */
export function formatLogArgs(args: readonly unknown[]): string {
  return args.map(formatLogValue).join(' ');
}

/** An error as one bounded line: `Name: message` for Errors, the safe rendering for anything thrown. */
export const formatError = (error: unknown): string => formatLogValue(error);
