// azure-iot-common is CommonJS with typings; Node's ESM loader sees its exports through the default export.
import common from 'azure-iot-common';
import { timingSafeEqual } from 'node:crypto';
import type { DeviceIdentity } from './ports.js';

const { SharedAccessSignature } = common;

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

/**
 * Signs a resource URI with a device key until `expiry` (epoch seconds): what a device SDK does, by the SDK's own
 * `SharedAccessSignature.create` (which signs `sr` as given, so the URI is encoded first, as the device SDK does).
 */
export function createSasToken(resourceUri: string, base64Key: string, expiry: number): string {
  return SharedAccessSignature.create(encode(resourceUri), '', base64Key, expiry).toString();
}

/** The signature bytes `base64Key` gives `signedResource` until `expiry` (the SDK's HMAC-SHA256). */
function signature(signedResource: string, base64Key: string, expiry: number): Buffer {
  const sig = SharedAccessSignature.create(signedResource, '', base64Key, expiry).sig;
  return Buffer.from(decodeURIComponent(sig), 'base64');
}

const PREFIX = 'SharedAccessSignature ';
const FIELDS = new Set(['sr', 'sig', 'se', 'skn']);
/** Expiry: decimal digits without leading zeros (no hex, exponent, sign or padding), as IoT Hub writes it. */
const EXPIRY = /^(?:0|[1-9][0-9]*)$/;
/** An HMAC-SHA256 signature is 32 bytes. */
const SIGNATURE_BYTES = 32;

/**
 * Whether every field of the token is a known one with a value, given once (the SDK's parser keeps the last of
 * twins and drops empty ones).
 */
function knownFieldsOnce(token: string): boolean {
  const seen = new Set<string>();
  for (const part of token.slice(PREFIX.length).split('&')) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq);
    if (eq <= 0 || eq === part.length - 1 || !FIELDS.has(name) || seen.has(name)) return false;
    seen.add(name);
  }
  return true;
}

/** `SharedAccessSignature.parse`, or undefined where it throws (missing field, not a SAS token). */
function parseWithSdk(token: string): InstanceType<typeof SharedAccessSignature> | undefined {
  try {
    return SharedAccessSignature.parse(token, ['sr', 'sig', 'se']);
  } catch {
    return undefined;
  }
}

/** decodeURIComponent, or undefined for a malformed escape. */
function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * Parses a token (fields by the SDK's `SharedAccessSignature.parse`); undefined when it is not a well-formed IoT
 * Hub SAS token. Strict, as IoT Hub is: known fields once each, `se` in plain decimal, `sig` in canonical base64
 * of 32 bytes (re-encoding gives it back exactly, so junk appended to it, which a lenient base64 decoder
 * ignores, is refused).
 */
export function parseSasToken(token: string): ParsedSasToken | undefined {
  if (!token.startsWith(PREFIX) || !knownFieldsOnce(token)) return undefined;
  const sas = parseWithSdk(token);
  if (!sas) return undefined;
  const signedResource = sas.sr;
  const resourceUri = decoded(signedResource);
  const sig = decoded(sas.sig) ?? '';
  const se = decoded(String(sas.se)) ?? '';
  const skn = (sas as { skn?: string }).skn;
  const keyName = skn === undefined ? undefined : decoded(skn);
  const expiry = Number(se);
  if (!resourceUri || !EXPIRY.test(se) || !Number.isSafeInteger(expiry)) return undefined;
  if (skn !== undefined && keyName === undefined) return undefined;
  const bytes = Buffer.from(sig, 'base64');
  if (bytes.length !== SIGNATURE_BYTES || bytes.toString('base64') !== sig) return undefined;
  return { resourceUri, signedResource, signature: sig, expiry, keyName };
}

export type SasVerdict = 'valid' | 'malformed' | 'expired' | 'wrong-resource' | 'bad-signature';

/** `host/path` with the host lower-cased (host names are case-insensitive; device ids are not). */
function normalizedResource(uri: string): string {
  const slash = uri.indexOf('/');
  return slash < 0 ? uri.toLowerCase() : `${uri.slice(0, slash).toLowerCase()}${uri.slice(slash)}`;
}

/**
 * Verifies a parsed token against its keys (either key may sign), its expiry against `nowSeconds`, and its
 * resource: the token's `sr` must be exactly the expected URI (a device key signs `{host}/devices/{id}`, a hub
 * policy key signs `{host}`); a broader or narrower scope is refused, as IoT Hub refuses it.
 */
export function verifySasToken(
  token: ParsedSasToken,
  expected: { resourceUri: string; keys: readonly string[]; nowSeconds: number },
): SasVerdict {
  if (token.expiry <= expected.nowSeconds) return 'expired';
  if (normalizedResource(token.resourceUri) !== normalizedResource(expected.resourceUri))
    return 'wrong-resource';
  const given = Buffer.from(token.signature, 'base64');
  for (const key of expected.keys) {
    if (!key) continue; // the SDK refuses to sign with an empty key; no token is valid for one
    const wanted = signature(token.signedResource, key, token.expiry);
    if (given.length === wanted.length && timingSafeEqual(given, wanted)) return 'valid';
  }
  return 'bad-signature';
}

/**
 * The one verifier of device credentials (the table identity store and the local device gateway both use it):
 * an `Authorization` header checked as IoT Hub checks a device SAS token, `sr` exactly `{hostName}/devices/{id}`
 * and no `skn` (a key name marks a hub policy token, which a device key never signs).
 */
export function verifyDeviceSasToken(
  authorization: string,
  device: { hostName: string; deviceId: string; keys: readonly string[]; nowSeconds: number },
): SasVerdict {
  const parsed = parseSasToken(authorization);
  if (!parsed || parsed.keyName !== undefined) return 'malformed';
  return verifySasToken(parsed, {
    resourceUri: `${device.hostName}/devices/${device.deviceId}`,
    keys: device.keys,
    nowSeconds: device.nowSeconds,
  });
}

/** A device's answer to a SAS token: the token's verdict, or why no token could be valid for it. */
export type DeviceAuthentication = SasVerdict | 'unknown-device' | 'disabled';

/**
 * Authenticates a device as IoT Hub's device API does, for both the table identity store and the local device
 * gateway: a malformed token is refused without a lookup; then the device must exist, the token must verify
 * against one of its current keys (`verifyDeviceSasToken`), and only an authenticated device learns that it
 * is disabled. A failing `lookup` (store unavailable) rejects: that is no verdict on the token.
 */
export async function authenticateDevice(
  authorization: string,
  device: { hostName: string; deviceId: string; nowSeconds: number },
  lookup: (deviceId: string) => Promise<Pick<DeviceIdentity, 'keys' | 'status'> | undefined>,
): Promise<DeviceAuthentication> {
  const parsed = parseSasToken(authorization);
  if (!parsed || parsed.keyName !== undefined) return 'malformed';
  const identity = await lookup(device.deviceId);
  if (!identity) return 'unknown-device';
  const verdict = verifyDeviceSasToken(authorization, {
    ...device,
    keys: [identity.keys.primaryKey, identity.keys.secondaryKey],
  });
  if (verdict !== 'valid') return verdict;
  return identity.status === 'enabled' ? 'valid' : 'disabled';
}
