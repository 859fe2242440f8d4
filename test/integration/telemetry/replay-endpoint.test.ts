import {
  EventHubConsumerClient,
  EventHubProducerClient,
  earliestEventPosition,
  type ReceivedEventData,
} from '@azure/event-hubs';
import { InvocationContext } from '@azure/functions';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdapters } from '../../../src/infra/adapters.js';
import type { IngestSummary } from '../../../src/telemetry/ingest-telemetry.js';
import { REPLAY_FORMAT } from '../../../src/telemetry/replay-envelope.js';
import { makeReplayTelemetry } from '../../../src/telemetry/replay-telemetry.js';
import { eventHubTriggerMetadata } from '../../../tools/iothub-trigger-metadata.js';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import { replayArchive, type ReplayOptions } from '../../../tools/replay/replay-archive.js';
import {
  archivedApp,
  blobNames,
  START_MS,
  stateDocuments,
  wipeState,
  type ArchivedApp,
} from './replay-fixture.js';

const HOUR = 3_600_000;

/** Events in the hub now: the sum over partitions of (last - first + 1), from the management node. */
async function eventsInHub(connection: string): Promise<number> {
  const producer = new EventHubProducerClient(connection, 'replay');
  try {
    let n = 0;
    for (const id of await producer.getPartitionIds()) {
      const p = await producer.getPartitionProperties(id);
      if (!p.isEmpty) n += p.lastEnqueuedSequenceNumber - p.beginningSequenceNumber + 1;
    }
    return n;
  } finally {
    await producer.close();
  }
}

/**
 * Reads the whole replay hub from the start, in batches per partition as the Functions host delivers them, and
 * hands each to `handle`; resolves once every event the hub held when asked has been handled.
 */
async function consumeReplayHub(
  connection: string,
  handle: (events: ReceivedEventData[], partitionId: string) => Promise<void>,
): Promise<number> {
  const expected = await eventsInHub(connection);
  const consumer = new EventHubConsumerClient('replay', connection, 'replay');
  let handled = 0;
  let failure: Error | undefined;
  const subscription = consumer.subscribe(
    {
      processEvents: async (events, context) => {
        if (events.length === 0) return;
        await handle(events, context.partitionId);
        handled += events.length;
      },
      processError: (error) => {
        failure ??= error;
        return Promise.resolve();
      },
    },
    {
      startPosition: earliestEventPosition,
      maxBatchSize: 200,
      maxWaitTimeInSeconds: 1,
      skipParsingBodyAsJson: true,
    },
  );
  try {
    // Bounded: 600 rounds of 200 ms (2 min); the assertions are on counts, never on time.
    for (let round = 0; round < 600 && handled < expected && failure === undefined; round++)
      await new Promise((r) => setTimeout(r, 200));
  } finally {
    await subscription.close();
    await consumer.close();
  }
  if (failure !== undefined) throw failure;
  expect(handled).toBe(expected);
  return handled;
}

/** The trigger's arguments for a received batch, as the host builds them (dataType binary: bodies as bytes). */
function triggerArguments(events: ReceivedEventData[], partitionId: string) {
  return {
    bodies: events.map((e) => e.body as unknown),
    triggerMetadata: eventHubTriggerMetadata(
      { eventHubName: 'replay', consumerGroup: 'replay', partitionId },
      events.map((e) => ({
        sequenceNumber: e.sequenceNumber,
        offset: e.offset,
        enqueuedTime: e.enqueuedTimeUtc.toISOString(),
        properties: e.properties ?? {},
        systemProperties: e.systemProperties ?? {},
      })),
    ),
  };
}

describe('npm run replay → local Event Hubs endpoint → replayTelemetry (10,000 records)', () => {
  let app: ArchivedApp;
  let hubs: LocalEventHubs;
  let folder: string;
  beforeAll(async () => {
    [app, hubs] = await Promise.all([archivedApp(200, 8_400), startLocalEventHubs({ port: 0 })]);
    folder = mkdtempSync(join(tmpdir(), 'replay-'));
  }, 240_000);
  afterAll(async () => {
    await hubs.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  const options = (overrides: Partial<ReplayOptions> = {}): Omit<ReplayOptions, 'producer'> => ({
    container: app.archiveContainer,
    hub: 'replay',
    fromMs: START_MS,
    toMs: START_MS + 3 * HOUR,
    ...overrides,
  });

  async function replayTo(connection: string, overrides: Partial<ReplayOptions> = {}) {
    const producer = new EventHubProducerClient(connection, 'replay');
    try {
      return await replayArchive({ ...options(overrides), producer });
    } finally {
      await producer.close();
    }
  }

  /** Consumes the hub into a fresh app instance's replayTelemetry (a restarted app: no state cache). */
  async function applyReplayHub(connection: string) {
    const adapters = createAdapters(app.config);
    const replay = makeReplayTelemetry({ ...adapters, options: app.config.ingest });
    const totals = { messages: 0, records: 0, stateWrites: 0, archiveBlobs: 0, deadLetters: 0, parked: 0 };
    await consumeReplayHub(connection, async (events, partitionId) => {
      const { bodies, triggerMetadata } = triggerArguments(events, partitionId);
      expect(events[0]?.properties?.['replay-format']).toBe(REPLAY_FORMAT);
      const summary: IngestSummary = await replay(bodies, new InvocationContext({ triggerMetadata }));
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += summary[key];
    });
    return totals;
  }

  it('wipe the state, replay the archive: identical last-known state; again: no writes, no new blobs', async () => {
    expect(app.records).toBeGreaterThanOrEqual(10_000);
    const before = await stateDocuments(app.stateContainer);
    expect(before.state.size).toBe(200);
    const blobsBefore = await blobNames(app.archiveContainer);
    expect(await wipeState(app.stateContainer)).toBe(200);
    expect((await stateDocuments(app.stateContainer)).state.size).toBe(0);

    const connection = hubs.connectionString();
    const sent = await replayTo(connection);
    expect(sent).toMatchObject({ messages: app.messages, records: app.records, skipped: 0 });
    const applied = await applyReplayHub(connection);
    expect(applied).toMatchObject({
      messages: app.messages,
      records: app.records,
      archiveBlobs: 0,
      deadLetters: 0,
    });
    expect(applied.parked).toBe(0);
    const rebuilt = await stateDocuments(app.stateContainer);
    expect(rebuilt.state).toEqual(before.state);

    // Replay again (the hub now holds both runs): nothing changes, nothing is written.
    await replayTo(connection);
    const again = await applyReplayHub(connection);
    expect(again.messages).toBe(2 * app.messages);
    expect(again.stateWrites).toBe(0);
    const after = await stateDocuments(app.stateContainer);
    expect(after.raw).toEqual(rebuilt.raw); // same _etag and _ts: not written
    expect(await blobNames(app.archiveContainer)).toEqual(blobsBefore);
    const { readContainer } = await import('../../support/blobs.js');
    const connectionString =
      'connectionString' in app.config.storage ? app.config.storage.connectionString : '';
    expect((await readContainer(connectionString, app.config.storage.deadLetterContainer)).size).toBe(0);
  }, 300_000);

  it('killed after a few batches and run again with its checkpoint: every message sent once', async () => {
    const second = await startLocalEventHubs({ port: 0 });
    try {
      const connection = second.connectionString();
      const checkpointFile = join(folder, 'replay.ckpt');
      const abort = new AbortController();
      const killed = replayTo(connection, {
        checkpointFile,
        roundSize: 500,
        concurrency: 4,
        signal: abort.signal,
        onProgress: (p) => {
          if (p.batches >= 12) abort.abort();
        },
      });
      await expect(killed).rejects.toThrow(/aborted/);
      const sentBefore = await eventsInHub(connection);
      expect(sentBefore).toBeGreaterThan(0);
      expect(sentBefore).toBeLessThan(app.messages);

      const resumed = await replayTo(connection, { checkpointFile, roundSize: 500, concurrency: 4 });
      expect(resumed.skipped).toBe(sentBefore);
      expect(resumed.messages).toBe(app.messages - sentBefore);

      const ids = new Map<string, number>();
      await consumeReplayHub(connection, (events) => {
        for (const e of events) ids.set(String(e.messageId), (ids.get(String(e.messageId)) ?? 0) + 1);
        return Promise.resolve();
      });
      expect(ids.size).toBe(app.messages);
      expect([...ids.values()].filter((n) => n > 1)).toEqual([]);

      // A third run with the finished checkpoint sends nothing.
      const third = await replayTo(connection, { checkpointFile });
      expect(third.messages).toBe(0);
      expect(await eventsInHub(connection)).toBe(app.messages);
    } finally {
      await second.stop();
    }
  }, 300_000);

  it('refuses a checkpoint made for another range', async () => {
    const checkpointFile = join(folder, 'replay.ckpt'); // written by the previous test for the full range
    await expect(
      replayTo(hubs.connectionString(), { checkpointFile, toMs: START_MS + HOUR }),
    ).rejects.toThrow(/checkpoint of another replay/);
  });
});
