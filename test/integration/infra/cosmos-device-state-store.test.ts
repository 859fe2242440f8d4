import { describe, expect, it, vi } from 'vitest';
import type { AppConfig } from '../../../src/config.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import {
  CosmosDeviceStateStore,
  jsonLengthEstimate,
} from '../../../src/infra/cosmos/cosmos-device-state-store.js';
import { DEFAULT_STATE_CACHE } from '../../../src/telemetry/ingest-options.js';
import type { DeviceState, FieldMap } from '../../../src/telemetry/last-known-values.js';
import { testConfig } from '../../support/local-env.js';

// The state cache is bounded by bytes, not only by devices (issue 11, ingest item 4): one document can near
// Cosmos DB's 2 MB item limit, so 10,000 of them would not fit a 2 GB instance.

/** A state of about `kib` KiB: 256 KiB values, as big as one IoT Hub message allows. */
function bigState(deviceId: string, kib: number): DeviceState {
  const telemetry: FieldMap = {};
  for (let i = 0; i * 256 < kib; i++) {
    telemetry[`blob${i}`] = {
      value: `${deviceId}:${i}:`.padEnd(Math.min(256, kib - i * 256) * 1024 - 200, 'x'),
      timestamp: '2026-11-23T10:00:00.000Z',
      timeSource: 'device',
      sequenceNumber: 1,
      recordIndex: 0,
    };
  }
  const at = '2026-11-23T10:00:00.000Z';
  return {
    deviceId,
    sequenceNumbers: { '0': 1 },
    firstSeen: at,
    lastSeen: at,
    counts: { messages: 1, records: { telemetry: 1 } },
    telemetry,
    diagnostics: {},
    metadata: {},
  };
}

/** The app's state store, as the composition root builds it from the config. */
function cosmosStore(config: AppConfig): CosmosDeviceStateStore {
  const store = createAdapters(config).stateStore;
  if (!(store instanceof CosmosDeviceStateStore)) throw new Error('expected the Cosmos DB state store');
  return store;
}

describe('CosmosDeviceStateStore state cache', () => {
  it('fed 2 MB documents, stays under its byte bound (and still caches what fits)', async () => {
    const maxBytes = 5 * 1024 * 1024;
    const config = testConfig({ Ingest__StateCacheMaxBytes: String(maxBytes) });
    expect(config.ingest.stateCacheMaxBytes).toBe(maxBytes);
    const store = cosmosStore(config);
    const devices = Array.from({ length: 8 }, (_, i) => `big-${i}`);
    for (const id of devices) {
      expect(await store.update(id, () => bigState(id, 1900))).toBe('created');
      const usage = store.cacheUsage();
      expect(usage.bytes).toBeLessThanOrEqual(maxBytes);
      expect(usage.entries).toBeGreaterThan(0);
    }
    expect(store.cacheUsage().entries).toBe(2); // ~1.9 MB each: two fit in 5 MiB, not eight
    // Evicted states are read back from Cosmos DB when needed; nothing is lost.
    expect((await store.get('big-0'))?.telemetry.blob0?.value).toMatch(/^big-0:0:x/);
  });

  it('does not cache a state larger than the whole bound, and still writes it', async () => {
    const config = testConfig({ Ingest__StateCacheMaxBytes: String(512 * 1024) });
    const store = cosmosStore(config);
    expect(await store.update('huge', () => bigState('huge', 1024))).toBe('created');
    expect(store.cacheUsage()).toEqual({ entries: 0, bytes: 0 });
    expect(await store.update('small', () => bigState('small', 4))).toBe('created');
    expect(store.cacheUsage().entries).toBe(1);
    expect((await store.get('huge'))?.deviceId).toBe('huge');
  });

  it('defaults to 256 MiB', () => {
    expect(testConfig().ingest.stateCacheMaxBytes).toBe(256 * 1024 * 1024);
    expect(DEFAULT_STATE_CACHE.maxBytes).toBe(256 * 1024 * 1024);
  });

  it('sizes a cached state without serializing it a second time (the SDK already does once)', async () => {
    const store = cosmosStore(testConfig());
    const state = bigState('sized', 512);
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      expect(await store.update('sized', () => state)).toBe('created');
      // The SDK serializes the document ({ ...state, id }), a different object; nothing else may.
      expect(stringify.mock.calls.filter(([value]) => value === state)).toHaveLength(0);
    } finally {
      stringify.mockRestore();
    }
    const exact = JSON.stringify(state).length;
    const { bytes } = store.cacheUsage();
    expect(bytes).toBeGreaterThan(exact * 0.95);
    expect(bytes).toBeLessThan(exact * 1.05);
  });

  it('estimates JSON length close to the real one for every kind of value', () => {
    const value = { a: [1, 2.5, -3e300, true, false, null, 'x"y'], 'k\\ey': { nested: ['', {}] }, n: null };
    const exact = JSON.stringify(value).length;
    expect(Math.abs(jsonLengthEstimate(value) - exact)).toBeLessThanOrEqual(exact * 0.5);
    expect(jsonLengthEstimate('abc')).toBe(5);
    expect(jsonLengthEstimate({ ab: 'cd' })).toBe(JSON.stringify({ ab: 'cd' }).length + 1);
  });
});
