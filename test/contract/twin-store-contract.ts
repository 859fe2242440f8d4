import { describe, expect, it } from 'vitest';
import type { IdentityStore } from '../../src/provisioning/ports.js';
import type { TwinStore } from '../../src/provisioning/twin.js';
import { DeviceNotFoundError, PreconditionFailedError } from '../../src/shared/errors.js';

/** Behaviour every TwinStore adapter shares; identities are created through the matching identity store. */
export function describeTwinStoreContract(
  name: string,
  stores: () => { twins: TwinStore; identities: IdentityStore },
): void {
  describe(`TwinStore contract: ${name}`, () => {
    it('has an empty twin for a new device, and none for an unknown one', async () => {
      const { twins, identities } = stores();
      await identities.create('twin-1');
      expect(await twins.get('twin-1')).toMatchObject({ deviceId: 'twin-1', desired: {} });
      expect(await twins.get('twin-nobody')).toBeUndefined();
    });

    it('merges desired-property patches (null removes) and honours If-Match', async () => {
      const { twins, identities } = stores();
      await identities.create('twin-2');
      const first = await twins.patchDesired('twin-2', { interval: 30, mode: 'eco' });
      expect(first.desired).toEqual({ interval: 30, mode: 'eco' });
      const second = await twins.patchDesired('twin-2', { mode: null, led: true }, first.etag);
      expect(second.desired).toEqual({ interval: 30, led: true });
      expect(second.etag).not.toBe(first.etag);
      await expect(twins.patchDesired('twin-2', { interval: 60 }, first.etag)).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      expect((await twins.get('twin-2'))?.desired).toEqual({ interval: 30, led: true });
      await expect(twins.patchDesired('twin-nobody', { a: 1 })).rejects.toBeInstanceOf(DeviceNotFoundError);
    });
  });
}
