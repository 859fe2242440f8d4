import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AesGcmCipher } from '../../../src/infra/crypto/aes-gcm-cipher.js';

const newKey = () => randomBytes(32).toString('base64');

describe('AesGcmCipher', () => {
  const cipher = new AesGcmCipher(newKey());

  it('round-trips, with a fresh IV each time', () => {
    const a = cipher.encrypt('secret', 'dev-1');
    expect(cipher.decrypt(a, 'dev-1')).toBe('secret');
    expect(cipher.encrypt('secret', 'dev-1')).not.toBe(a);
    expect(a).not.toContain('secret');
  });

  it('refuses other associated data, another key, and any tampering', () => {
    const sealed = cipher.encrypt('secret', 'dev-1');
    expect(() => cipher.decrypt(sealed, 'dev-2')).toThrow();
    expect(() => new AesGcmCipher(newKey()).decrypt(sealed, 'dev-1')).toThrow();
    const bytes = Buffer.from(sealed.slice(3), 'base64');
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    expect(() => cipher.decrypt(`v1.${bytes.toString('base64')}`, 'dev-1')).toThrow();
    expect(() => cipher.decrypt('v0.abc', 'dev-1')).toThrow('Unknown ciphertext format');
  });

  it('needs a 32-byte key', () => {
    expect(() => new AesGcmCipher(randomBytes(16).toString('base64'))).toThrow('32 bytes');
  });
});

describe('AesGcmCipher tag length', () => {
  it('refuses a ciphertext whose authentication tag was shortened', () => {
    const cipher = new AesGcmCipher(newKey());
    const raw = Buffer.from(cipher.encrypt('secret', 'dev-1').slice(3), 'base64');
    // IV (12) + a 4-byte tag only: must not be accepted as a shorter valid tag.
    const truncated = Buffer.concat([raw.subarray(0, 12 + 4), raw.subarray(12 + 16)]);
    expect(() => cipher.decrypt(`v1.${truncated.toString('base64')}`, 'dev-1')).toThrow();
    expect(() => cipher.decrypt('v1.AAAA', 'dev-1')).toThrow('too short');
  });
});
