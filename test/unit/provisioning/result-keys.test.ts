import { describe, expect, it } from 'vitest';
import { AesGcmCipher } from '../../../src/infra/crypto/aes-gcm-cipher.js';
import { generateKeys } from '../../../src/provisioning/keys.js';
import {
  dropExpiredKeys,
  openKeysFile,
  parseResultLines,
  resultLinesText,
  sealKeysFile,
  sealSecrets,
  servedLines,
  type StoredResultLine,
} from '../../../src/provisioning/result-keys.js';

const cipher = new AesGcmCipher(Buffer.alloc(32, 1).toString('base64'));
const other = new AesGcmCipher(Buffer.alloc(32, 2).toString('base64'));
const NOW = new Date('2026-12-01T12:00:00Z');
const keys = generateKeys();
const secrets = { keys, connectionString: `HostName=h;DeviceId=d1;SharedAccessKey=${keys.primaryKey}` };
const line = (expireAt: string): StoredResultLine => ({
  deviceId: 'd1',
  outcome: 'created',
  sealed: sealSecrets(cipher, 'run-1', 'd1', secrets),
  keysExpireAt: expireAt,
});

describe('device keys in provisioning results', () => {
  it('serves sealed keys inside their window, and nothing of them after it', () => {
    const live = line('2026-12-01T13:00:00Z');
    expect(JSON.stringify(live)).not.toContain(keys.primaryKey);
    expect(servedLines(cipher, 'run-1', [live], NOW)).toEqual([
      { deviceId: 'd1', outcome: 'created', keysExpireAt: live.keysExpireAt, ...secrets },
    ]);
    const expired = line('2026-12-01T12:00:00Z');
    expect(servedLines(cipher, 'run-1', [expired], NOW)).toEqual([
      { deviceId: 'd1', outcome: 'created', keysExpireAt: expired.keysExpireAt, keys: 'expired' },
    ]);
  });

  it('answers unreadable, not an error, for a ciphertext of another key, run or device', () => {
    const live = line('2026-12-01T13:00:00Z');
    for (const [c, run, device] of [
      [other, 'run-1', 'd1'],
      [cipher, 'run-2', 'd1'],
      [cipher, 'run-1', 'd2'],
    ] as const) {
      expect(servedLines(c, run, [{ ...live, deviceId: device }], NOW)[0]).toMatchObject({
        keys: 'unreadable',
      });
    }
  });

  it('treats plaintext keys from before encryption, and sealed keys without a window, as expired', () => {
    const legacy = {
      deviceId: 'd1',
      outcome: 'provisioned',
      keys,
      connectionString: secrets.connectionString,
    };
    const noWindow = { deviceId: 'd2', outcome: 'created', sealed: 'v1.x' };
    const failed = { deviceId: 'd3', outcome: 'failed', error: 'no' };
    const { lines, changed } = dropExpiredKeys([legacy, noWindow, failed], NOW);
    expect(changed).toBe(true);
    expect(lines).toEqual([
      { deviceId: 'd1', outcome: 'provisioned', keys: 'expired' },
      { deviceId: 'd2', outcome: 'created', keys: 'expired' },
      failed,
    ]);
    expect(dropExpiredKeys(lines, NOW).changed).toBe(false);
    expect(parseResultLines(resultLinesText(lines))).toEqual(lines);
  });

  it('keeps work blobs of keys encrypted and bound to their name; reads plaintext ones written before', () => {
    const text = sealKeysFile(cipher, 'keys/w1.json', keys);
    expect(text).not.toContain(keys.primaryKey);
    expect(openKeysFile(cipher, 'keys/w1.json', text)).toEqual(keys);
    expect(() => openKeysFile(cipher, 'keys/w2.json', text)).toThrow();
    expect(openKeysFile(cipher, 'keys/w1.json', JSON.stringify(keys))).toEqual(keys);
  });
});
