import { InvocationContext } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { eventHubTriggerMetadata } from '../../../tools/iothub-trigger-metadata.js';
import { archiveLine } from '../../../src/telemetry/archive-layout.js';
import { DEFAULT_INGEST_OPTIONS } from '../../../src/telemetry/ingest-options.js';
import { makeIngestTelemetry } from '../../../src/telemetry/ingest-telemetry.js';
import type { DeviceState } from '../../../src/telemetry/last-known-values.js';
import type { DeadLetterStore, DeviceStateStore, RawArchive } from '../../../src/telemetry/ports.js';
import {
  decodeReplayMessage,
  encodeReplayMessage,
  parseArchiveLine,
  REPLAY_FORMAT,
  REPLAY_GZIP_ABOVE_BYTES,
  replayEventBody,
  toReplayMessages,
  topLevelMember,
  type ArchivedRecord,
  type ReplayMessage,
} from '../../../src/telemetry/replay-envelope.js';
import { makeReplayTelemetry } from '../../../src/telemetry/replay-telemetry.js';
import { iotHubBatch, type TestMessage } from '../../support/iothub-batch.js';
import { record, seededRandom, shuffle } from './fixtures.js';

class MemoryLines implements RawArchive, DeadLetterStore {
  readonly blobs = new Map<string, string[]>();
  put(name: string, lines: readonly string[]) {
    if (this.blobs.has(name)) return Promise.resolve('exists' as const);
    this.blobs.set(name, [...lines]);
    return Promise.resolve('created' as const);
  }
  archive(name: string, lines: readonly string[]) {
    return this.put(name, lines);
  }
  park(name: string, lines: readonly string[]) {
    return this.put(name, lines);
  }
}

class MemoryState implements DeviceStateStore {
  readonly states = new Map<string, DeviceState>();
  writes = 0;
  get(deviceId: string) {
    return Promise.resolve(this.states.get(deviceId));
  }
  update(deviceId: string, update: (current: DeviceState | undefined) => DeviceState | undefined) {
    const next = update(this.states.get(deviceId));
    if (!next) return Promise.resolve('unchanged' as const);
    this.writes++;
    this.states.set(deviceId, next);
    return Promise.resolve('replaced' as const);
  }
  delete(deviceId: string) {
    return Promise.resolve(this.states.delete(deviceId));
  }
}

const OPTIONS = { ...DEFAULT_INGEST_OPTIONS, stateWriteConcurrency: 4, maxRetryCount: 3 };

describe('topLevelMember', () => {
  it('finds the top-level member, not a nested one or text inside a string', () => {
    const line =
      '{"properties":{"a":1,"body":2,"s":"x,\\"body\\":3"},"t":"\\\\","body":{"body":[1,{"v":"}"}]} ,"z":0}';
    expect(topLevelMember(line, 'body')).toBe('{"body":[1,{"v":"}"}]}');
    expect(topLevelMember(line, 'z')).toBe('0');
    expect(topLevelMember(line, 'missing')).toBeUndefined();
  });
});

describe('parseArchiveLine', () => {
  it('reads back what archiveLine wrote, the body text byte for byte (big numbers, line breaks, a "body" property)', () => {
    const sources = [
      '{"id":123456789012345678901234567890,"t":1e999}',
      '{\n  "pretty": true\n}',
      '{"body":{"body":1}}',
    ];
    for (const [i, source] of sources.entries()) {
      const r = record(7, JSON.parse(source.replace(/(\d{20,}|1e999)/g, '"$1"')) as Record<string, unknown>, {
        source,
        recordIndex: i,
        moduleId: 'mod',
        properties: { body: ',"body":', 'stream-id': 'telemetry' },
      });
      const parsed = parseArchiveLine(archiveLine(r));
      expect(parsed).toEqual({
        deviceId: 'dev-1',
        moduleId: 'mod',
        partitionId: '0',
        sequenceNumber: 7,
        recordIndex: i,
        offset: String(7 * 1024),
        enqueuedTimeMs: r.enqueuedTimeMs,
        stream: 'telemetry',
        timestamp: new Date(r.timestampMs).toISOString(),
        timeSource: 'enqueued',
        properties: r.properties,
        source,
      });
    }
  });

  it.each([
    '',
    'not json',
    '[]',
    '{"deviceId":"d"}',
    '{"deviceId":"d","partitionId":"0","sequenceNumber":-1}',
  ])('skips a line that is not an archive record: %j', (line) => {
    expect(parseArchiveLine(line)).toBeUndefined();
  });
});

const archived = (
  seq: number,
  recordIndex: number,
  overrides: Partial<ArchivedRecord> = {},
): ArchivedRecord => ({
  deviceId: 'd',
  moduleId: undefined,
  partitionId: '1',
  sequenceNumber: seq,
  recordIndex,
  offset: String(seq),
  enqueuedTimeMs: Date.UTC(2026, 0, 1) + seq,
  stream: 'telemetry',
  timestamp: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
  timeSource: 'enqueued',
  properties: {},
  source: `{"i":${recordIndex}}`,
  ...overrides,
});

describe('toReplayMessages', () => {
  it('groups the records of one message, in sequence and record order, each record once', () => {
    const records = [
      archived(5, 1),
      archived(3, 0),
      archived(5, 0, { stream: 'diag' }),
      archived(5, 1),
      archived(3, 0),
    ];
    const messages = toReplayMessages(shuffle(records, seededRandom(3)));
    expect(messages.map((m) => [m.sequenceNumber, m.records.map((r) => r.recordIndex)])).toEqual([
      [3, [0]],
      [5, [0, 1]],
    ]);
    expect(messages[1]?.records[0]?.stream).toBe('diag');
  });
});

describe('decodeReplayMessage', () => {
  const good: ReplayMessage = toReplayMessages([archived(1, 0)])[0] as ReplayMessage;

  it('round-trips encode → bytes → decode', () => {
    expect(decodeReplayMessage(Buffer.from(encodeReplayMessage(good)))).toEqual(good);
  });

  it.each([
    ['not JSON', Buffer.from('nope'), 'invalid-json'],
    ['another format', Buffer.from('{"format":"x"}'), 'not-an-object'],
    ['no device', { ...good, deviceId: '' }, 'no-identity'],
    ['no sequence number', { ...good, sequenceNumber: -2 }, 'no-sequence-number'],
    ['no enqueued time', { ...good, enqueuedTime: 'soon' }, 'no-enqueued-time'],
    ['no records', { ...good, records: [] }, 'not-an-object'],
    ['a malformed record', { ...good, records: [{ recordIndex: 0 }] }, 'not-an-object'],
  ])('refuses %s', (_, body, reason) => {
    expect(decodeReplayMessage(body)).toMatchObject({ reason });
  });

  it('a 256 KiB message of tiny array records fits one Event Hubs event (1 MiB) and decodes back exactly', () => {
    // IoT Hub's largest message, as 29,127 records `{"t":N}`: ~4 MB of envelope JSON before compression.
    const records = Array.from({ length: 29_127 }, (_, i) => ({
      recordIndex: i,
      stream: 'telemetry',
      timestamp: new Date(Date.UTC(2026, 10, 23, 10) + i).toISOString(),
      timeSource: 'device' as const,
      source: `{"t":${i}}`,
    }));
    const big: ReplayMessage = { ...good, records };
    expect(encodeReplayMessage(big).length).toBeGreaterThan(1024 * 1024);
    const body = replayEventBody(big);
    expect(body.length).toBeLessThan(1024 * 1024 - 64 * 1024); // room for the event's properties
    expect(decodeReplayMessage(body)).toEqual(big);
  });

  it('a small message stays plain JSON text; a damaged compressed body is refused, not thrown', () => {
    const small = replayEventBody(good);
    expect(small.length).toBeLessThanOrEqual(REPLAY_GZIP_ABOVE_BYTES);
    expect(small.toString('utf8')).toBe(encodeReplayMessage(good));
    const damaged = Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4]);
    expect(decodeReplayMessage(damaged)).toMatchObject({ reason: 'invalid-json' });
  });
});

/** Archive lines → replay events, as the tool builds them (one partition's lines at a time). */
function replayEventsOf(archive: MemoryLines): Buffer[] {
  const byPartition = new Map<string, ArchivedRecord[]>();
  for (const lines of archive.blobs.values()) {
    for (const line of lines) {
      const r = parseArchiveLine(line);
      if (!r) throw new Error(`unreadable archive line ${line}`);
      byPartition.set(r.partitionId, [...(byPartition.get(r.partitionId) ?? []), r]);
    }
  }
  return [...byPartition.values()].flatMap((records) =>
    toReplayMessages(records).map((m) => Buffer.from(encodeReplayMessage(m))),
  );
}

describe('replayTelemetry (unit, in-memory ports)', () => {
  const ts = (s: number) => new Date(Date.UTC(2026, 10, 23, 9, 0, s)).toISOString();
  const messages: TestMessage[] = [
    { deviceId: 'a', sequenceNumber: 1, body: Buffer.from(`{"temp":20,"ts":"${ts(1)}"}`) },
    // An array body: two records of one message, one in another stream.
    {
      deviceId: 'a',
      sequenceNumber: 2,
      body: Buffer.from(`[{"temp":21,"ts":"${ts(2)}"},{"_subject":"diagnostics","rssi":-70}]`),
    },
    { deviceId: 'b', sequenceNumber: 3, body: Buffer.from('{"big":123456789012345678901234567890}') },
    { deviceId: 'b', sequenceNumber: 4, body: Buffer.from('{\n "pretty": 1\n}'), properties: { body: 'x' } },
    { deviceId: 'c', sequenceNumber: 5, body: Buffer.from('{"_subject":"gps","lat":1}') },
    { deviceId: 'c', sequenceNumber: 6, body: Buffer.from('not json') }, // dead-lettered, never archived
  ];

  async function ingestThenReplay() {
    const original = {
      stateStore: new MemoryState(),
      archive: new MemoryLines(),
      deadLetters: new MemoryLines(),
    };
    const ingest = makeIngestTelemetry({ ...original, options: OPTIONS });
    for (const partitionId of ['0', '3']) {
      const { bodies, triggerMetadata } = iotHubBatch(messages, partitionId);
      await ingest(bodies, new InvocationContext({ triggerMetadata }));
    }
    const events = replayEventsOf(original.archive);
    const replayed = { stateStore: new MemoryState(), deadLetters: new MemoryLines() };
    const replay = makeReplayTelemetry({ ...replayed, options: OPTIONS });
    const triggerMetadata = eventHubTriggerMetadata(
      { eventHubName: 'replay', consumerGroup: 'replay', partitionId: '2' },
      events.map((_, i) => ({
        sequenceNumber: i,
        offset: String(i),
        enqueuedTime: new Date().toISOString(),
        properties: { 'replay-format': REPLAY_FORMAT },
        systemProperties: {},
      })),
    );
    const run = () => replay(events, new InvocationContext({ triggerMetadata }));
    return { original, replayed, run, events };
  }

  it('rebuilds the same state from the archive, two partitions in one batch; a second replay writes nothing', async () => {
    const { original, replayed, run, events } = await ingestThenReplay();
    expect(events).toHaveLength(10); // 5 archived messages × 2 partitions
    const first = await run();
    expect(first).toMatchObject({ messages: 10, records: 12, archiveBlobs: 0, deadLetters: 0 });
    expect(replayed.stateStore.states).toEqual(original.stateStore.states);
    expect(original.stateStore.states.get('b')?.telemetry.big?.value).toBe('123456789012345678901234567890');
    const writes = replayed.stateStore.writes;
    const again = await run();
    expect(again.stateWrites).toBe(0);
    expect(replayed.stateStore.writes).toBe(writes);
    expect(replayed.deadLetters.blobs.size).toBe(0);
  });

  it('replayed onto the state it came from, changes nothing', async () => {
    const { original, events } = await ingestThenReplay();
    const before = structuredClone([...original.stateStore.states]);
    const replay = makeReplayTelemetry({
      stateStore: original.stateStore,
      deadLetters: original.deadLetters,
      options: OPTIONS,
    });
    const summary = await replay(events, new InvocationContext({ triggerMetadata: {} }));
    expect(summary.stateWrites).toBe(0);
    expect([...original.stateStore.states]).toEqual(before);
  });

  it('dead-letters a malformed replay event under replay/ and applies the rest', async () => {
    const { replayed, events } = await ingestThenReplay();
    const replay = makeReplayTelemetry({ ...replayed, options: OPTIONS });
    const summary = await replay(
      [Buffer.from('{"format":"iot-replay/1"}'), ...events.slice(0, 1)],
      new InvocationContext({ triggerMetadata: { partitionContext: { partitionId: '1' } } }),
    );
    expect(summary).toMatchObject({ messages: 2, records: 1, deadLetters: 1 });
    const names = [...replayed.deadLetters.blobs.keys()];
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^replay\/1970\/01\/01\/00\/replay-1-h[0-9a-f]{16}\.jsonl$/);
  });
});
