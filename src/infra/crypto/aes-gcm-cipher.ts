import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';

/**
 * AES-256-GCM encryption of small secrets at rest. The associated data binds a ciphertext to its owner (e.g.
 * the device id), so a ciphertext copied to another row does not decrypt. Output: `v1.{base64(iv|tag|data)}`.
 */
export class AesGcmCipher {
  private readonly key: Buffer;

  /** `base64Key` must decode to exactly 32 bytes. */
  constructor(base64Key: string) {
    const key = Buffer.from(base64Key, 'base64');
    if (key.length !== 32) throw new Error('The encryption key must be 32 bytes, base64-encoded.');
    this.key = key;
  }

  encrypt(plaintext: string, associatedData: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), data]).toString('base64')}`;
  }

  /** Throws when the ciphertext was altered, belongs to other associated data, or was made with another key. */
  decrypt(ciphertext: string, associatedData: string): string {
    if (!ciphertext.startsWith(`${VERSION}.`)) throw new Error('Unknown ciphertext format.');
    const raw = Buffer.from(ciphertext.slice(VERSION.length + 1), 'base64');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('Ciphertext too short.');
    // A fixed tag length: a shortened tag must not be accepted.
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
      'utf8',
    );
  }
}
