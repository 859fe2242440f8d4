import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * IoT Hub shared access signatures: `SharedAccessSignature sr={URL-encoded resource URI}&sig={signature}&se={expiry}`
 * where the signature is base64(HMAC-SHA256(base64-decoded key, URL-encoded resource URI + "\n" + expiry)).
 */

export interface ParsedSasToken {
  /** The resource URI, decoded (e.g. `myhub.azure-devices.net/devices/sensor-1`). */
  resourceUri: string;
  /** The `sr` field exactly as sent: the signature covers this encoded form. */
  signedResource: string;
  signature: string;
  /** Expiry, seconds since the epoch. */
  expiry: number;
  keyName: string | undefined;
}

/** encodeURIComponent plus `!'()*` (lower-case hex), byte for byte as the Azure IoT SDKs encode; device ids may contain those. */
const encode = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);

/** Signs a resource URI with a device key until `expiry` (epoch seconds): what a device SDK does. */
export function createSasToken(resourceUri: string, base64Key: string, expiry: number): string {
  const signedResource = encode(resourceUri);
  const signature = sign(signedResource, base64Key, expiry);
  return `SharedAccessSignature sr=${signedResource}&sig=${encode(signature)}&se=${expiry}`;
}

function sign(signedResource: string, base64Key: string, expiry: number): string {
  return createHmac('sha256', Buffer.from(base64Key, 'base64'))
    .update(`${signedResource}\n${expiry}`)
    .digest('base64');
}

/** Parses a token; undefined when it is not a well-formed IoT Hub SAS token. */
export function parseSasToken(token: string): ParsedSasToken | undefined {
  const prefix = 'SharedAccessSignature ';
  if (!token.startsWith(prefix)) return undefined;
  const fields = new Map<string, string>();
  const raw = new Map<string, string>();
  for (const part of token.slice(prefix.length).split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    try {
      raw.set(part.slice(0, eq), part.slice(eq + 1));
      fields.set(part.slice(0, eq), decodeURIComponent(part.slice(eq + 1)));
    } catch {
      return undefined;
    }
  }
  const resourceUri = fields.get('sr');
  const signedResource = raw.get('sr');
  const signature = fields.get('sig');
  const expiry = Number(fields.get('se'));
  if (!resourceUri || !signedResource || !signature || !Number.isSafeInteger(expiry)) return undefined;
  return { resourceUri, signedResource, signature, expiry, keyName: fields.get('skn') };
}

export type SasVerdict = 'valid' | 'malformed' | 'expired' | 'wrong-resource' | 'bad-signature';

/**
 * Verifies a parsed token for one device against its keys (either key may sign), its expiry against `nowSeconds`,
 * and its resource against the expected URI (the token may be scoped to the hub or to the device, as IoT Hub allows).
 */
export function verifySasToken(
  token: ParsedSasToken,
  expected: { resourceUri: string; keys: readonly string[]; nowSeconds: number },
): SasVerdict {
  if (token.expiry <= expected.nowSeconds) return 'expired';
  const scope = token.resourceUri.toLowerCase().replace(/\/+$/, '');
  const target = expected.resourceUri.toLowerCase();
  if (!(target === scope || target.startsWith(`${scope}/`))) return 'wrong-resource';
  const given = Buffer.from(token.signature, 'base64');
  for (const key of expected.keys) {
    const wanted = Buffer.from(sign(token.signedResource, key, token.expiry), 'base64');
    if (given.length === wanted.length && timingSafeEqual(given, wanted)) return 'valid';
  }
  return 'bad-signature';
}
