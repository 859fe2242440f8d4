import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import type { DeviceJobResult, JobDeviceResultStore } from '../../../src/jobs/ports.js';
import { testSettings } from '../../support/local-env.js';

let store: JobDeviceResultStore;
beforeAll(() => {
  store = createAdapters(loadConfig(testSettings())).jobDeviceResults;
});

const result = (deviceId: string, ok: boolean): DeviceJobResult =>
  ok
    ? { deviceId, status: 'succeeded' }
    : { deviceId, status: 'failed', error: { code: 'DeviceNotOnline', message: 'not connected' } };

describe('BlobJobDeviceResults on Azurite', () => {
  it('pages one run across its batches in batch order, filtered by status, with tokens that resume exactly', async () => {
    const jobId = `job-${crypto.randomUUID()}`;
    // Saved out of order; batch 10 sorts after batch 2 (zero-padded names).
    await store.save(jobId, 1, 10, [result('k', true), result('l', false)]);
    await store.save(jobId, 1, 0, [result('a', true), result('b', false), result('c', true)]);
    await store.save(jobId, 1, 2, [result('d', false)]);
    await store.save(jobId, 2, 0, [result('other-run', false)]);

    const ids: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await store.page(jobId, 1, { top: 2, ...(token ? { continuationToken: token } : {}) });
      ids.push(...page.items.map((r) => r.deviceId));
      token = page.continuationToken;
      pages++;
    } while (token && pages < 10);
    expect(ids).toEqual(['a', 'b', 'c', 'd', 'k', 'l']);

    const failed = await store.page(jobId, 1, { top: 100, status: 'failed' });
    expect(failed.items.map((r) => r.deviceId)).toEqual(['b', 'd', 'l']);
    expect(failed.items[0]).toEqual(result('b', false));
    expect(failed.continuationToken).toBeUndefined();

    // Saving a batch again replaces it (an activity that ran twice).
    await store.save(jobId, 1, 2, [result('d', true)]);
    expect((await store.page(jobId, 1, { top: 100, status: 'failed' })).items.map((r) => r.deviceId)).toEqual(
      ['b', 'l'],
    );

    await store.forget(jobId, 1);
    expect(await store.page(jobId, 1, { top: 100 })).toEqual({ items: [] });
    expect((await store.page(jobId, 2, { top: 100 })).items).toHaveLength(1);
  });

  it.each(['x', 'eyJ4IjoxfQ', Buffer.from('{"b":-1,"l":0}').toString('base64url'), 'a'.repeat(300), '%%'])(
    'refuses a continuation token it did not issue (%s) as a validation error',
    async (token) => {
      await expect(
        store.page(`job-${crypto.randomUUID()}`, 1, { top: 10, continuationToken: token }),
      ).rejects.toMatchObject({ code: 'validation-error' });
    },
  );
});
