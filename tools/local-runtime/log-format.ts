import { inspect, type InspectOptions } from 'node:util';

/** Bounded, one-line rendering: a log line never grows with a hostile payload. */
const OPTIONS: InspectOptions = {
  depth: 4,
  breakLength: Infinity,
  compact: true,
  maxArrayLength: 20,
  maxStringLength: 1_000,
};

/** One value as log text: strings as they are, anything else through util.inspect. Never throws. */
export function formatLogValue(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return inspect(value, OPTIONS);
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

/** An error as one line: `Name: message` for Errors, the safe rendering for anything thrown. */
export function formatError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return formatLogValue(error);
}
