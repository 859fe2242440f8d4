import { describe, expect, it } from 'vitest';
import { createAdapters } from '../../../src/infra/adapters.js';
import { makeIngestTelemetry } from '../../../src/telemetry/ingest-telemetry.js';
import { readContainer, readLines } from '../../support/blobs.js';
import { iotHubBatch, testContext, type TestMessage } from '../../support/iothub-batch.js';
import { testConfig } from '../../support/local-env.js';

// Hostile batches against Azurite and the local Cosmos DB server: one device's bad input may cost only
// that device's records (issue 11, ingest item 1).

function newApp(overrides: Record<string, string> = {}) {
  const config = testConfig(overrides);
  const adapters = createAdapters(config);
  const ingest = makeIngestTelemetry({ ...adapters, options: config.ingest });
  const connection = 'connectionString' in config.storage ? config.storage.connectionString : '';
  return {
    config,
    adapters,
    rawArchiveBlobs: () => readContainer(connection, config.storage.rawArchiveContainer),
    run: (messages: readonly TestMessage[], retryCount = 0) => {
      const { bodies, triggerMetadata } = iotHubBatch(messages, '1');
      return ingest(
        bodies,
        testContext(triggerMetadata, { retryCount, maxRetryCount: config.ingest.maxRetryCount }),
      );
    },
    archived: () => readLines(connection, config.storage.rawArchiveContainer),
    deadLettered: () => readLines(connection, config.storage.deadLetterContainer),
  };
}

describe('a hostile device in a batch', () => {
  it('200 messages of 1,000 scalars cost only their own records: every good record lands on the first attempt', async () => {
    const app = newApp();
    const scalars = Buffer.from(JSON.stringify(Array.from({ length: 1000 }, (_, i) => i)));
    const messages: TestMessage[] = [];
    let seq = 1;
    for (let i = 0; i < 200; i++)
      messages.push({ deviceId: 'hostile', sequenceNumber: seq++, body: scalars });
    for (let d = 0; d < 99; d++) {
      messages.push({
        deviceId: `good-${d}`,
        sequenceNumber: seq++,
        body: Buffer.from(JSON.stringify({ temperature: d, ok: true })),
      });
    }

    // Attempt 0 of 5: a throw here would mean a retry (and, before, the whole batch parked at the end).
    const summary = await app.run(messages, 0);
    expect(summary.records).toBe(99);
    expect(summary.devices).toBe(99);
    expect(summary.stateWrites).toBe(99);

    const states = await Promise.all(
      Array.from({ length: 99 }, (_, d) => app.adapters.stateStore.get(`good-${d}`)),
    );
    expect(states.map((s) => s?.telemetry.temperature?.value)).toEqual(
      Array.from({ length: 99 }, (_, d) => d),
    );
    expect(await app.adapters.stateStore.get('hostile')).toBeUndefined();

    const archived = await app.archived();
    expect(archived.map((l) => l.deviceId).sort()).toEqual(
      Array.from({ length: 99 }, (_, d) => `good-${d}`).sort(),
    );
    // One dead-letter line per bad message (not one per element): a count, the first few, the body once.
    const dead = await app.deadLettered();
    expect(dead).toHaveLength(200);
    expect(dead[0]).toMatchObject({
      reason: 'not-an-object',
      deviceId: 'hostile',
      badElements: { count: 1000, first: Array.from({ length: 10 }, (_, i) => ({ index: i, value: i })) },
      bodyText: scalars.toString('utf8'),
    });
  });
});

describe('bodies as the host delivers them for dataType binary', () => {
  it('archives the bytes exactly and keeps numbers a double cannot hold as their text in state', async () => {
    const app = newApp();
    const text = '{"huge": 1e999, "big": 123456789012345678901234567890, "t": 21.50}';
    const pretty = '{\n  "t": 1\n}';
    const summary = await app.run([
      { deviceId: 'exact', sequenceNumber: 1, body: Buffer.from(text) },
      { deviceId: 'exact', sequenceNumber: 2, body: Buffer.from(`[${text},\n ${text}]`) },
      { deviceId: 'pretty', sequenceNumber: 3, body: Buffer.from(pretty) },
    ]);
    expect(summary.records).toBe(4);
    const state = await app.adapters.stateStore.get('exact');
    expect(state?.telemetry.huge?.value).toBe('1e999');
    expect(state?.telemetry.big?.value).toBe('123456789012345678901234567890');
    expect(state?.telemetry.t?.value).toBe(21.5);

    const archived = await app.archived();
    expect(archived).toHaveLength(4);
    const blobs = await app.rawArchiveBlobs();
    const lines = [...blobs.values()].join('\n').split('\n').filter(Boolean);
    // The device's bytes appear verbatim in each line of the exact device, once per record.
    expect(lines.filter((l) => l.includes(`"body":${text}}`))).toHaveLength(3);
    expect(archived.find((l) => l.deviceId === 'pretty')?.bodyText).toBe(pretty);
  });
});
