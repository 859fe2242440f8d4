import { createHmac, timingSafeEqual } from 'node:crypto';
import { entityPath } from './addresses.js';

/** A verified SAS token: the resource path it covers (lower case, no scheme or host) and when it expires. */
export interface VerifiedToken {
  path: string;
  expiresAtMs: number;
}

/** Why a token was refused; never contains the token or its signature. */
export class SasRefusedError extends Error {
  override name = 'SasRefusedError';
}

/**
 * Verifies `SharedAccessSignature sr=<url-encoded uri>&sig=<sig>&se=<expiry s>&skn=<key name>` the way Event Hubs
 * does: HMAC-SHA256 over "<url-encoded uri>\n<expiry>" with the key's UTF-8 bytes, compared in constant time.
 */
export function verifySasToken(token: string, keyName: string, key: string, nowMs: number): VerifiedToken {
  const prefix = 'SharedAccessSignature ';
  if (!token.startsWith(prefix)) throw new SasRefusedError('not a SharedAccessSignature token');
  const fields = new Map<string, string>();
  for (const part of token.slice(prefix.length).split('&')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const sr = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  const skn = fields.get('skn');
  if (sr === undefined || sig === undefined || se === undefined || skn === undefined) {
    throw new SasRefusedError('token lacks sr, sig, se or skn');
  }
  if (skn !== keyName) throw new SasRefusedError('unknown key name');
  const expiry = Number(se);
  if (!Number.isInteger(expiry)) throw new SasRefusedError('malformed expiry');
  const expected = createHmac('sha256', key).update(`${sr}\n${se}`, 'utf8').digest();
  let given: Buffer;
  try {
    given = Buffer.from(decodeURIComponent(sig), 'base64');
  } catch {
    throw new SasRefusedError('malformed signature');
  }
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new SasRefusedError('signature does not match');
  }
  if (expiry * 1000 <= nowMs) throw new SasRefusedError('token expired');
  let uri: string;
  try {
    uri = decodeURIComponent(sr);
  } catch {
    throw new SasRefusedError('malformed resource');
  }
  return { path: resourcePath(uri), expiresAtMs: expiry * 1000 };
}

/** The entity path of an audience or link address, lower case: `sb://localhost:5672/Hub/` is `hub`. */
export function resourcePath(uriOrAddress: string): string {
  return entityPath(uriOrAddress).toLowerCase();
}

/** True when a token for `tokenPath` grants access to `linkPath` (the namespace, the entity or a parent segment). */
export function tokenCovers(tokenPath: string, linkPath: string): boolean {
  return tokenPath === '' || linkPath === tokenPath || linkPath.startsWith(`${tokenPath}/`);
}
