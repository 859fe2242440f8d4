/**
 * Function keys in the embedded runtime, checked as the Functions host checks them before a function runs: an
 * `anonymous` HTTP function needs none; `function` takes a function key or the master key; `admin` only the master
 * key (the host's `system` level is not used by the app). The key comes in the `x-functions-key` header or the
 * `code` query parameter; a missing or wrong one is 401 with an empty body.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The keys a run enforces (one function key for every function, as the host's default key). */
export interface FunctionKeys {
  /** Accepted by `function`-level functions. */
  functionKey: string;
  /** Accepted by every level (the host's master key). */
  masterKey: string;
}

/** Fresh random keys for one run (the host makes 40-odd base64url characters). */
export function generateFunctionKeys(): FunctionKeys {
  const key = () => randomBytes(30).toString('base64url');
  return { functionKey: key(), masterKey: key() };
}

/** Compares without leaking where two keys differ. */
function sameKey(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether a request may call a function of `authLevel` (the binding's value; the host's default is `function`). */
export function authorized(
  authLevel: unknown,
  req: IncomingMessage,
  url: URL,
  keys: FunctionKeys | undefined,
): boolean {
  const level = typeof authLevel === 'string' ? authLevel.toLowerCase() : 'function';
  if (keys === undefined || level === 'anonymous') return true;
  const header = req.headers['x-functions-key'];
  const given = (typeof header === 'string' ? header : undefined) ?? url.searchParams.get('code') ?? '';
  if (given === '') return false;
  if (sameKey(given, keys.masterKey)) return true;
  return level === 'function' && sameKey(given, keys.functionKey);
}
