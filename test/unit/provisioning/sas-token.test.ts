// azure-iothub is CommonJS without named exports that Node's ESM loader can see: take them from the default.
import iothub from 'azure-iothub';
import { describe, expect, it } from 'vitest';
import { generateKeys } from '../../../src/provisioning/keys.js';
import { createSasToken, parseSasToken, verifySasToken } from '../../../src/provisioning/sas-token.js';

const { SharedAccessSignature } = iothub;

const HOST = 'myhub.azure-devices.net';
const strict = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);

describe('IoT Hub SAS tokens', () => {
  const { primaryKey, secondaryKey } = generateKeys();
  const expiry = 1_800_000_000;

  it.each(['sensor-1', "odd!'()*id", 'a#b?c%d'])(
    'match what the Azure IoT SDK signs for device %s',
    (deviceId) => {
      const uri = `${HOST}/devices/${deviceId}`;
      const sdkToken = SharedAccessSignature.create(strict(uri), '', primaryKey, expiry).toString();
      const ours = createSasToken(uri, primaryKey, expiry);
      const sig = (t: string) => /sig=([^&]+)/.exec(t)?.[1]?.toLowerCase();
      expect(sig(ours)).toBe(sig(sdkToken));

      const parsed = parseSasToken(sdkToken);
      expect(parsed?.resourceUri).toBe(uri);
      expect(
        parsed &&
          verifySasToken(parsed, {
            resourceUri: uri,
            keys: [secondaryKey, primaryKey],
            nowSeconds: expiry - 1,
          }),
      ).toBe('valid');
    },
  );

  it('refuses expired, foreign, tampered and wrongly keyed tokens', () => {
    const uri = `${HOST}/devices/d1`;
    const check = (token: string, now = expiry - 10, keys = [primaryKey]) => {
      const parsed = parseSasToken(token);
      return parsed ? verifySasToken(parsed, { resourceUri: uri, keys, nowSeconds: now }) : 'malformed';
    };
    const token = createSasToken(uri, primaryKey, expiry);
    expect(check(token)).toBe('valid');
    expect(check(token, expiry)).toBe('expired');
    expect(check(createSasToken(`${HOST}/devices/d2`, primaryKey, expiry))).toBe('wrong-resource');
    expect(check(createSasToken(`${HOST}/devices/d`, primaryKey, expiry))).toBe('wrong-resource');
    expect(check(token.replace(`se=${expiry}`, `se=${expiry + 3600}`))).toBe('bad-signature');
    expect(check(token, expiry - 10, [secondaryKey])).toBe('bad-signature');
    expect(check('SharedAccessSignature sr=x&se=1')).toBe('malformed');
    expect(check('Basic Zm9v')).toBe('malformed');
  });
});
