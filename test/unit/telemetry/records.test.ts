import { describe, expect, it } from 'vitest';
import type { IotHubMessageMeta } from '../../../src/telemetry/iothub-batch.js';
import { DEFAULT_INGEST_OPTIONS, type IngestOptions } from '../../../src/telemetry/ingest-options.js';
import {
  normalizeStreamName,
  parseMessage,
  isValueField,
  type ParsedMessage,
  type TelemetryRecord,
} from '../../../src/telemetry/records.js';

const ENQUEUED = Date.UTC(2026, 10, 23, 10, 0, 0);

function meta(overrides: Partial<IotHubMessageMeta> = {}): IotHubMessageMeta {
  return {
    deviceId: 'dev-1',
    moduleId: undefined,
    sequenceNumber: 100,
    offset: '2048',
    enqueuedTimeMs: ENQUEUED,
    properties: {},
    ...overrides,
  };
}

const parse = (
  body: unknown,
  m: Partial<IotHubMessageMeta> = {},
  options: IngestOptions = DEFAULT_INGEST_OPTIONS,
) => parseMessage(body, meta(m), '4', options);

function onlyRecord(parsed: ParsedMessage): TelemetryRecord {
  expect(parsed.deadLetters).toEqual([]);
  expect(parsed.records).toHaveLength(1);
  return parsed.records[0] as TelemetryRecord;
}

/** The payload entries that project as values (what projectBatch reads). */
const valueFields = (record: TelemetryRecord): [string, unknown][] =>
  Object.entries(record.payload).filter(([key]) => isValueField(record, key));

const streamOf = (body: unknown, properties: Record<string, unknown> = {}) =>
  onlyRecord(parse(body, { properties })).stream;

describe('parseMessage: bodies', () => {
  it('accepts an already parsed object', () => {
    const record = onlyRecord(parse({ temperature: 21.5 }, { moduleId: 'm1' }));
    expect(record).toMatchObject({
      deviceId: 'dev-1',
      moduleId: 'm1',
      partitionId: '4',
      sequenceNumber: 100,
      recordIndex: 0,
      offset: '2048',
      enqueuedTimeMs: ENQUEUED,
      stream: 'telemetry',
      version: undefined,
      timestampMs: ENQUEUED,
      timeSource: 'enqueued',
      timestampField: undefined,
      payload: { temperature: 21.5 },
    });
  });

  it('accepts a JSON string', () => {
    expect(onlyRecord(parse('{"temperature": 21.5}')).payload).toEqual({ temperature: 21.5 });
  });

  it('accepts a Buffer of UTF-8 JSON', () => {
    const record = onlyRecord(parse(Buffer.from(JSON.stringify({ site: 'Zürich', temperature: 3 }), 'utf8')));
    expect(record.payload).toEqual({ site: 'Zürich', temperature: 3 });
  });

  it('turns a JSON array body into one record per element, numbered by recordIndex', () => {
    const parsed = parse('[{"a":1},{"a":2},{"a":3}]');
    expect(parsed.deadLetters).toEqual([]);
    expect(parsed.records.map((r) => [r.recordIndex, r.sequenceNumber, r.payload])).toEqual([
      [0, 100, { a: 1 }],
      [1, 100, { a: 2 }],
      [2, 100, { a: 3 }],
    ]);
  });

  it('dead-letters the non-object elements of an array and keeps the others', () => {
    const parsed = parse([{ a: 1 }, 42, null, { a: 2 }]);
    expect(parsed.records.map((r) => r.recordIndex)).toEqual([0, 3]);
    expect(parsed.deadLetters).toMatchObject([
      {
        reason: 'not-an-object',
        detail: '2 of 4 array elements are not objects',
        body: [{ a: 1 }, 42, null, { a: 2 }],
        badElements: {
          count: 2,
          first: [
            { index: 1, value: 42 },
            { index: 2, value: null },
          ],
        },
      },
    ]);
  });

  it('summarizes any number of bad elements of one message in one dead letter: count, first 10, body once', () => {
    const body = Buffer.from(JSON.stringify(Array.from({ length: 1000 }, (_, i) => i)));
    const parsed = parse(body);
    expect(parsed.records).toEqual([]);
    expect(parsed.deadLetters).toHaveLength(1);
    expect(parsed.deadLetters[0]?.body).toBe(body);
    expect(parsed.deadLetters[0]?.badElements?.count).toBe(1000);
    expect(parsed.deadLetters[0]?.badElements?.first.map((b) => b.index)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
  });

  it('keeps the exact text of each record of a body that arrived as bytes', () => {
    const text = ' [ {"a": 1.50, "s": "x,]}\\\\"},\n  {"b" :[1,2]} ,7 ] ';
    const parsed = parse(Buffer.from(text));
    expect(parsed.records.map((r) => r.source)).toEqual(['{"a": 1.50, "s": "x,]}\\\\"}', '{"b" :[1,2]}']);
    expect(onlyRecord(parse(Buffer.from('\n{"a":1e2}\n'))).source).toBe('{"a":1e2}');
    expect(onlyRecord(parse({ a: 1 })).source).toBeUndefined();
  });

  it('keeps numbers a double cannot hold as the text the device sent', () => {
    const record = onlyRecord(
      parse(
        Buffer.from(
          '{"huge": 1e999, "big": 123456789012345678901234567890, "precise": 0.12345678901234567890,' +
            ' "tiny": 1e-400, "fine": 12345678901234500000000, "plain": 21.5, "text": "1e999"}',
        ),
      ),
    );
    expect(record.payload).toEqual({
      huge: '1e999',
      big: '123456789012345678901234567890',
      // Extra digits of a measurement are not lost information: the nearest double is what it means.
      precise: 0.12345678901234568,
      tiny: '1e-400',
      fine: 1.23456789012345e22,
      plain: 21.5,
      text: '1e999',
    });
  });

  it('reads the device timestamp from the payload', () => {
    const record = onlyRecord(parse({ ts: '2026-11-23T09:59:00Z', temperature: 1 }));
    expect(record).toMatchObject({
      timestampMs: Date.UTC(2026, 10, 23, 9, 59),
      timeSource: 'device',
      timestampField: 'ts',
    });
  });

  it.each([
    ['a Buffer that is not UTF-8', Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), 'invalid-json'],
    ['text that is not JSON', '{"temperature": ', 'invalid-json'],
    ['a JSON number', '42', 'not-an-object'],
    ['a JSON string', '"hello"', 'not-an-object'],
    ['null', null, 'not-an-object'],
    ['a number', 42, 'not-an-object'],
  ])('dead-letters %s as %s', (_name, body, reason) => {
    const parsed = parse(body);
    expect(parsed.records).toEqual([]);
    expect(parsed.deadLetters).toHaveLength(1);
    expect(parsed.deadLetters[0]).toMatchObject({ reason, body, partitionId: '4' });
  });

  it('dead-letters bodies beyond the size, depth and field limits', () => {
    const options = { ...DEFAULT_INGEST_OPTIONS, maxRecordBytes: 100, maxDepth: 2, maxFields: 3 };
    const reasonOf = (body: unknown) => parse(body, {}, options).deadLetters[0]?.reason;
    expect(reasonOf(JSON.stringify({ text: 'x'.repeat(100) }))).toBe('too-large');
    expect(reasonOf(Buffer.from(JSON.stringify({ text: 'x'.repeat(100) })))).toBe('too-large');
    expect(reasonOf({ text: 'x'.repeat(100) })).toBe('too-large');
    expect(reasonOf({ a: { b: { c: 1 } } })).toBe('too-deep');
    expect(reasonOf({ a: 1, b: 2, c: 3, d: 4 })).toBe('too-many-fields');
    // Just inside the limits: accepted, and an array body gets one extra level for its elements.
    expect(onlyRecord(parse({ a: { b: 1 } }, {}, options)).payload).toEqual({ a: { b: 1 } });
    expect(parse([{ a: { b: 1 } }], {}, options).records).toHaveLength(1);
  });
});

describe('parseMessage: identity', () => {
  it("dead-letters a message without IoT Hub's device id even when the payload names one", () => {
    const parsed = parse({ deviceId: 'spoofed', temperature: 1 }, { deviceId: undefined });
    expect(parsed.records).toEqual([]);
    expect(parsed.deadLetters).toEqual([
      expect.objectContaining({ reason: 'no-identity', body: { deviceId: 'spoofed', temperature: 1 } }),
    ]);
  });

  it("keeps IoT Hub's device id, not the payload's", () => {
    expect(onlyRecord(parse({ deviceId: 'spoofed' }, { deviceId: 'dev-1' })).deviceId).toBe('dev-1');
  });

  it('dead-letters a message without enqueued time rather than dating it 1970', () => {
    expect(parse({ a: 1 }, { enqueuedTimeMs: undefined }).deadLetters[0]?.reason).toBe('no-enqueued-time');
  });

  it('dead-letters a message without sequence number', () => {
    expect(parse({ a: 1 }, { sequenceNumber: undefined }).deadLetters[0]?.reason).toBe('no-sequence-number');
  });
});

describe('parseMessage: streams', () => {
  it("defaults to 'telemetry'", () => {
    expect(streamOf({ a: 1 })).toBe('telemetry');
  });

  it("uses the payload's _subject", () => {
    expect(streamOf({ _subject: 'diagnostics', a: 1 })).toBe('diagnostics');
  });

  it("prefers the 'subject' property, in any case, over the payload's _subject", () => {
    expect(streamOf({ _subject: 'diagnostics' }, { subject: 'metadata' })).toBe('metadata');
    expect(streamOf({ _subject: 'diagnostics' }, { Subject: 'metadata' })).toBe('metadata');
    expect(streamOf({ _subject: 'diagnostics' }, { SUBJECT: 'metadata' })).toBe('metadata');
  });

  it("prefers the 'stream-id' property over 'subject'", () => {
    expect(streamOf({ _subject: 'diagnostics' }, { subject: 'metadata', 'stream-id': 'alerts' })).toBe(
      'alerts',
    );
    expect(streamOf({ a: 1 }, { 'Stream-Id': 'alerts' })).toBe('alerts');
  });

  it('skips a property that normalizes to nothing', () => {
    expect(streamOf({ _subject: 'diagnostics' }, { 'stream-id': '../', subject: 42 })).toBe('diagnostics');
  });

  it('applies the property stream to every element of an array body', () => {
    const parsed = parse([{ _subject: 'diagnostics' }, { a: 1 }], { properties: { subject: 'metadata' } });
    expect(parsed.records.map((r) => r.stream)).toEqual(['metadata', 'metadata']);
  });

  it('lets each element of an array body name its own _subject', () => {
    const parsed = parse([{ _subject: 'diagnostics' }, { a: 1 }]);
    expect(parsed.records.map((r) => r.stream)).toEqual(['diagnostics', 'telemetry']);
  });

  it('normalizes the stream name', () => {
    expect(streamOf({ _subject: '../../etc/passwd' })).toBe('etc_passwd');
  });
});

describe('normalizeStreamName', () => {
  it.each([
    ['telemetry', 'telemetry'],
    ['  Diagnostics ', 'diagnostics'],
    ['../etc', 'etc'],
    ['a/../b', 'a_b'],
    ['..\\windows\\system32', 'windows_system32'],
    ['sensor data (v2)', 'sensor_data_v2_'],
    ['__proto__', 'proto__'],
    ['-rf', 'rf'],
    ['%2e%2e%2fetc', '2e_2e_2fetc'],
  ])('%j → %j', (raw, expected) => {
    expect(normalizeStreamName(raw)).toBe(expected);
  });

  it('keeps only path-safe characters', () => {
    for (const raw of ['../etc', 'a/b\\c', 'x y', 'ünïcödé', 'a\u0000b', 'C:\\temp', 'x?y#z']) {
      expect(normalizeStreamName(raw)).toMatch(/^[a-z0-9][a-z0-9_-]*$/);
    }
  });

  it('cuts long names to 64 characters', () => {
    expect(normalizeStreamName('s'.repeat(200))).toBe('s'.repeat(64));
  });

  it.each([[''], ['   '], ['../'], ['___'], [42], [null], [undefined], [{}]])('refuses %j', (raw) => {
    expect(normalizeStreamName(raw)).toBeUndefined();
  });
});

describe('versions and value fields', () => {
  it('captures _version as a string', () => {
    expect(onlyRecord(parse({ _version: '2.1', a: 1 })).version).toBe('2.1');
    expect(onlyRecord(parse({ _version: 3, a: 1 })).version).toBe('3');
    expect(onlyRecord(parse({ _version: { major: 3 }, a: 1 })).version).toBeUndefined();
  });

  it('leaves out _subject, _version and the timestamp field', () => {
    const record = onlyRecord(
      parse({
        _subject: 'metadata',
        _version: '1',
        timestamp: '2026-11-23T09:00:00Z',
        firmware: '1.2',
        nested: { a: 1 },
      }),
    );
    expect(Object.fromEntries(valueFields(record))).toEqual({ firmware: '1.2', nested: { a: 1 } });
  });

  it('leaves out an implausible timestamp field too', () => {
    const record = onlyRecord(parse({ ts: '1970-01-01T00:00:00Z', temperature: 1 }));
    expect(record.timeSource).toBe('enqueued');
    expect([...valueFields(record)]).toEqual([['temperature', 1]]);
  });

  it('keeps timestamp-like fields that were not used as the timestamp', () => {
    const record = onlyRecord(parse({ timestamp: '2026-11-23T09:00:00Z', ts: 'other', temperature: 1 }));
    expect(Object.fromEntries(valueFields(record))).toEqual({ ts: 'other', temperature: 1 });
  });
});
