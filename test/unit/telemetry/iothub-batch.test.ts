import { describe, expect, it } from 'vitest';
import { propertyIgnoringCase, readIotHubBatchMetadata } from '../../../src/telemetry/iothub-batch.js';

const T0 = '2026-11-23T10:00:00.000Z';
const T1 = '2026-11-23T10:00:01.000Z';

/** Trigger metadata as the v4 library delivers it for the IoT Hub built-in endpoint (first letter lower-cased). */
function v4Metadata(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    partitionContext: { eventHubName: 'iothub-events', consumerGroup: 'ingest', partitionId: '3' },
    sequenceNumberArray: [41, 42],
    offsetArray: ['4096', '5120'],
    enqueuedTimeUtcArray: [T0, T1],
    propertiesArray: [{ subject: 'diagnostics' }, {}],
    systemPropertiesArray: [
      { 'iothub-connection-device-id': 'dev-a', 'iothub-connection-module-id': 'edge-mod' },
      { 'iothub-connection-device-id': 'dev-b' },
    ],
    ...overrides,
  };
}

describe('readIotHubBatchMetadata', () => {
  it('reads the per-message arrays of a v4 batch', () => {
    expect(readIotHubBatchMetadata(v4Metadata(), 2)).toEqual({
      partitionId: '3',
      messages: [
        {
          deviceId: 'dev-a',
          moduleId: 'edge-mod',
          sequenceNumber: 41,
          offset: '4096',
          enqueuedTimeMs: Date.parse(T0),
          properties: { subject: 'diagnostics' },
        },
        {
          deviceId: 'dev-b',
          moduleId: undefined,
          sequenceNumber: 42,
          offset: '5120',
          enqueuedTimeMs: Date.parse(T1),
          properties: {},
        },
      ],
    });
  });

  it('accepts enqueued times as Date objects', () => {
    const meta = v4Metadata({ enqueuedTimeUtcArray: [new Date(T0), new Date(T1)] });
    expect(readIotHubBatchMetadata(meta, 2).messages.map((m) => m.enqueuedTimeMs)).toEqual([
      Date.parse(T0),
      Date.parse(T1),
    ]);
  });

  it('accepts sequence numbers as numeric strings', () => {
    const meta = v4Metadata({ sequenceNumberArray: ['41', '42'] });
    expect(readIotHubBatchMetadata(meta, 2).messages.map((m) => m.sequenceNumber)).toEqual([41, 42]);
  });

  it('accepts sequence numbers as Long-like objects (protobuf int64 decoding)', () => {
    // collectionSint64 decoded by protobufjs without long conversion: { low, high, unsigned }.
    const big = 2 ** 32 + 7;
    const meta = v4Metadata({
      sequenceNumberArray: [
        { low: 41, high: 0, unsigned: false },
        { low: 7, high: 1, unsigned: false },
      ],
    });
    expect(readIotHubBatchMetadata(meta, 2).messages.map((m) => m.sequenceNumber)).toEqual([41, big]);
  });

  it('reads an unsigned Long-like sequence number with the low word above 2^31', () => {
    const meta = v4Metadata({
      sequenceNumberArray: [
        { low: -1, high: 0, unsigned: true },
        { low: 0x80000000 | 0, high: 0 },
      ],
    });
    expect(readIotHubBatchMetadata(meta, 2).messages.map((m) => m.sequenceNumber)).toEqual([
      2 ** 32 - 1,
      2 ** 31,
    ]);
  });

  it('rejects a Long-like sequence number that is negative or beyond 2^53', () => {
    const meta = v4Metadata({
      sequenceNumberArray: [
        { low: -1, high: -1, unsigned: false },
        { low: 0, high: 2 ** 22, unsigned: false },
      ],
    });
    expect(readIotHubBatchMetadata(meta, 2).messages.map((m) => m.sequenceNumber)).toEqual([
      undefined,
      undefined,
    ]);
  });

  it('reads sequenceNumber, offset and enqueuedTimeUtc of each system-properties entry (v4 camel case)', () => {
    // The extension adds SequenceNumber, Offset, EnqueuedTimeUtc to every entry; the v4 library lower-cases
    // their first letter.
    const meta = {
      partitionContext: { partitionId: '1' },
      systemPropertiesArray: [
        { 'iothub-connection-device-id': 'dev-a', sequenceNumber: 11, offset: '1100', enqueuedTimeUtc: T0 },
        {
          'iothub-connection-device-id': 'dev-b',
          sequenceNumber: { low: 12, high: 0, unsigned: false },
          offset: { low: 1200, high: 0 },
          enqueuedTimeUtc: new Date(T1),
        },
      ],
    };
    const { messages } = readIotHubBatchMetadata(meta, 2);
    expect(messages.map((m) => [m.deviceId, m.sequenceNumber, m.offset, m.enqueuedTimeMs])).toEqual([
      ['dev-a', 11, '1100', Date.parse(T0)],
      ['dev-b', 12, '1200', Date.parse(T1)],
    ]);
  });

  it('reads sequence numbers given as strings in the system-properties entries', () => {
    const meta = {
      systemPropertiesArray: [{ sequenceNumber: '9007199254740991' }, { sequenceNumber: '13' }],
    };
    expect(readIotHubBatchMetadata(meta, 2).messages.map((m) => m.sequenceNumber)).toEqual([
      Number.MAX_SAFE_INTEGER,
      13,
    ]);
  });

  it('prefers the camel-cased entry fields over the x-opt annotations', () => {
    const meta = {
      systemPropertiesArray: [
        { sequenceNumber: 21, 'x-opt-sequence-number': 999, offset: '2100', 'x-opt-offset': '9' },
      ],
    };
    expect(readIotHubBatchMetadata(meta, 1).messages[0]).toMatchObject({
      sequenceNumber: 21,
      offset: '2100',
    });
  });

  it('falls back to the system properties when the arrays are missing', () => {
    const meta = {
      partitionContext: { partitionId: '0' },
      systemPropertiesArray: [
        {
          'iothub-connection-device-id': 'dev-a',
          'x-opt-sequence-number': 7,
          'x-opt-offset': '700',
          'iothub-enqueuedtime': T0,
        },
        { 'iothub-connection-device-id': 'dev-b', 'x-opt-sequence-number': '8', 'x-opt-enqueued-time': T1 },
      ],
    };
    const { messages } = readIotHubBatchMetadata(meta, 2);
    expect(messages.map((m) => [m.sequenceNumber, m.offset, m.enqueuedTimeMs])).toEqual([
      [7, '700', Date.parse(T0)],
      [8, undefined, Date.parse(T1)],
    ]);
  });

  it('prefers the arrays over the system properties', () => {
    const meta = v4Metadata({
      systemPropertiesArray: [
        { 'iothub-connection-device-id': 'dev-a', 'x-opt-sequence-number': 999, 'iothub-enqueuedtime': T1 },
        { 'iothub-connection-device-id': 'dev-b' },
      ],
    });
    const [first] = readIotHubBatchMetadata(meta, 2).messages;
    expect(first).toMatchObject({ sequenceNumber: 41, enqueuedTimeMs: Date.parse(T0) });
  });

  it('ignores unreadable array entries and falls back per message', () => {
    const meta = v4Metadata({
      sequenceNumberArray: ['not-a-number', ''],
      enqueuedTimeUtcArray: ['garbage', new Date(Number.NaN)],
      systemPropertiesArray: [
        { 'iothub-connection-device-id': 'dev-a', 'x-opt-sequence-number': 5, 'iothub-enqueuedtime': T1 },
        { 'iothub-connection-device-id': 'dev-b' },
      ],
    });
    const { messages } = readIotHubBatchMetadata(meta, 2);
    expect(messages.map((m) => [m.sequenceNumber, m.enqueuedTimeMs])).toEqual([
      [5, Date.parse(T1)],
      [undefined, undefined],
    ]);
  });

  it("uses 'unknown' as the partition when there is no partitionContext", () => {
    const { partitionContext: _, ...meta } = v4Metadata();
    expect(readIotHubBatchMetadata(meta, 2).partitionId).toBe('unknown');
    expect(readIotHubBatchMetadata(v4Metadata({ partitionContext: {} }), 2).partitionId).toBe('unknown');
  });

  it('turns a numeric partition id into text', () => {
    expect(readIotHubBatchMetadata(v4Metadata({ partitionContext: { partitionId: 2 } }), 2).partitionId).toBe(
      '2',
    );
  });

  it('does not read the PascalCase keys of the in-process model', () => {
    const meta = {
      PartitionContext: { PartitionId: '1' },
      SystemPropertiesArray: [{ 'iothub-connection-device-id': 'dev-a' }],
      SequenceNumberArray: [1],
    };
    expect(readIotHubBatchMetadata(meta, 1)).toEqual({
      partitionId: 'unknown',
      messages: [
        {
          deviceId: undefined,
          moduleId: undefined,
          sequenceNumber: undefined,
          offset: undefined,
          enqueuedTimeMs: undefined,
          properties: {},
        },
      ],
    });
  });

  it('returns one entry per message even when metadata is absent or not an object', () => {
    for (const meta of [undefined, null, 'text', [1, 2]]) {
      const batch = readIotHubBatchMetadata(meta, 3);
      expect(batch.partitionId).toBe('unknown');
      expect(batch.messages).toHaveLength(3);
      expect(batch.messages.every((m) => m.deviceId === undefined && m.sequenceNumber === undefined)).toBe(
        true,
      );
    }
  });

  it('does not trust an empty device id', () => {
    const meta = v4Metadata({ systemPropertiesArray: [{ 'iothub-connection-device-id': '' }, {}] });
    expect(readIotHubBatchMetadata(meta, 2).messages.map((m) => m.deviceId)).toEqual([undefined, undefined]);
  });

  it('replaces non-object application properties by an empty object', () => {
    const meta = v4Metadata({ propertiesArray: ['subject=x', null] });
    expect(readIotHubBatchMetadata(meta, 2).messages.map((m) => m.properties)).toEqual([{}, {}]);
  });
});

describe('propertyIgnoringCase', () => {
  it('finds a property whatever its case', () => {
    expect(propertyIgnoringCase({ Subject: 'metadata' }, 'subject')).toBe('metadata');
    expect(propertyIgnoringCase({ subject: 'metadata' }, 'Subject')).toBe('metadata');
    expect(propertyIgnoringCase({ 'STREAM-ID': 'x' }, 'stream-id')).toBe('x');
  });

  it('prefers the exact spelling when several casings exist', () => {
    expect(propertyIgnoringCase({ SUBJECT: 'upper', subject: 'exact' }, 'subject')).toBe('exact');
  });

  it('returns undefined when absent, and ignores inherited properties', () => {
    expect(propertyIgnoringCase({ other: 1 }, 'subject')).toBeUndefined();
    expect(propertyIgnoringCase({}, 'toString')).toBeUndefined();
    expect(
      propertyIgnoringCase(Object.create({ subject: 'inherited' }) as Record<string, unknown>, 'subject'),
    ).toBe(undefined);
  });
});
