import { describe, expect, it } from 'vitest';
import { deviceConnectionString } from '../../../src/provisioning/keys.js';
import { metadataSizeProblems } from '../../../src/provisioning/metadata.js';

describe('metadataSizeProblems (the one metadata size rule)', () => {
  // {"a":"…"} is 8 bytes of JSON around the value.
  const sized = (valueBytes: string) => ({ a: valueBytes });

  it('accepts metadata of exactly the limit and refuses one byte more, naming the path and both sizes', () => {
    expect(metadataSizeProblems(sized('x'.repeat(92)), 100)).toEqual([]);
    expect(metadataSizeProblems(sized('x'.repeat(93)), 100, '3.metadata')).toEqual([
      { path: '3.metadata', message: 'is 101 bytes; at most 100' },
    ]);
  });

  it('counts UTF-8 bytes, not characters', () => {
    // 46 two-byte characters: 92 bytes, 46 characters.
    expect(metadataSizeProblems(sized('é'.repeat(46)), 100)).toEqual([]);
    expect(metadataSizeProblems(sized('é'.repeat(47)), 100)).toEqual([
      { path: 'metadata', message: 'is 102 bytes; at most 100' },
    ]);
  });
});

describe('deviceConnectionString (the one builder)', () => {
  it('names the hub, the device and the primary key, never the secondary one', () => {
    const text = deviceConnectionString('hub.azure-devices.net', 'dev-1', {
      primaryKey: 'cHJpbWFyeQ==',
      secondaryKey: 'c2Vjb25kYXJ5',
    });
    expect(text).toBe('HostName=hub.azure-devices.net;DeviceId=dev-1;SharedAccessKey=cHJpbWFyeQ==');
  });
});
