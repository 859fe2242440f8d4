import { randomBytes } from 'node:crypto';
import { ValidationError } from '../shared/errors.js';

/** A device's two symmetric keys (base64), as IoT Hub issues them; either one signs SAS tokens. */
export interface SymmetricKeys {
  primaryKey: string;
  secondaryKey: string;
}

// IoT Hub accepts symmetric keys of 16 to 64 bytes, base64-encoded; it generates 32-byte keys.
const MIN_KEY_BYTES = 16;
const MAX_KEY_BYTES = 64;
const GENERATED_KEY_BYTES = 32;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Two fresh random keys, as IoT Hub would generate them. */
export function generateKeys(): SymmetricKeys {
  return {
    primaryKey: randomBytes(GENERATED_KEY_BYTES).toString('base64'),
    secondaryKey: randomBytes(GENERATED_KEY_BYTES).toString('base64'),
  };
}

/** Where caller-supplied keys break IoT Hub's rules, naming the bad key (never its value); empty when they don't. */
export function keyProblems(keys: SymmetricKeys): { path: string; message: string }[] {
  const errors: { path: string; message: string }[] = [];
  for (const name of ['primaryKey', 'secondaryKey'] as const) {
    const key = keys[name];
    const bytes = BASE64.test(key) && key.length % 4 === 0 ? Buffer.from(key, 'base64').length : 0;
    if (bytes < MIN_KEY_BYTES || bytes > MAX_KEY_BYTES) {
      errors.push({
        path: `keys.${name}`,
        message: `must be base64 of ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes`,
      });
    }
  }
  if (keys.primaryKey === keys.secondaryKey) {
    errors.push({ path: 'keys.secondaryKey', message: 'must differ from primaryKey' });
  }
  return errors;
}

/** Checks caller-supplied keys against IoT Hub's rules; throws ValidationError naming the bad key (never its value). */
export function validateKeys(keys: SymmetricKeys): SymmetricKeys {
  const errors = keyProblems(keys);
  if (errors.length > 0) throw new ValidationError('Invalid device keys.', errors);
  return keys;
}

/** The given keys, validated, or a fresh pair: what creating an identity or resetting its keys takes. */
export const keysOrNew = (keys?: SymmetricKeys): SymmetricKeys =>
  keys ? validateKeys(keys) : generateKeys();

/** A device's connection string (primary key), as IoT Hub shows it: what a provisioned device is handed once. */
export const deviceConnectionString = (hostName: string, deviceId: string, keys: SymmetricKeys): string =>
  `HostName=${hostName};DeviceId=${deviceId};SharedAccessKey=${keys.primaryKey}`;
