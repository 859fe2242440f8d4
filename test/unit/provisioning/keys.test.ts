import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateKeys, validateKeys } from '../../../src/provisioning/keys.js';
import { ValidationError } from '../../../src/shared/errors.js';

const key = (bytes: number) => randomBytes(bytes).toString('base64');

describe('device keys', () => {
  it('generates two different 32-byte base64 keys', () => {
    const keys = generateKeys();
    expect(Buffer.from(keys.primaryKey, 'base64')).toHaveLength(32);
    expect(keys.primaryKey).not.toBe(keys.secondaryKey);
  });

  it('accepts keys of 16 to 64 bytes', () => {
    expect(() => validateKeys({ primaryKey: key(16), secondaryKey: key(64) })).not.toThrow();
  });

  it.each([
    ['too short', { primaryKey: key(15), secondaryKey: key(32) }, 'keys.primaryKey'],
    ['too long', { primaryKey: key(32), secondaryKey: key(65) }, 'keys.secondaryKey'],
    ['not base64', { primaryKey: 'not base64!', secondaryKey: key(32) }, 'keys.primaryKey'],
  ])('refuses keys that are %s, naming the key but never its value', (_label, keys, path) => {
    try {
      validateKeys(keys);
      expect.fail('accepted');
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).errors.map((e) => e.path)).toContain(path);
      expect(JSON.stringify((error as ValidationError).errors)).not.toContain(keys.secondaryKey);
    }
  });

  it('refuses identical primary and secondary keys', () => {
    const same = key(32);
    expect(() => validateKeys({ primaryKey: same, secondaryKey: same })).toThrow(ValidationError);
  });
});
