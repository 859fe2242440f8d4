import { describe, expect, it } from 'vitest';
import {
  archiveBlobs,
  archiveLine,
  batchKey,
  deadLetterBlob,
  deadLetterLine,
  hourPath,
  type BlobBatch,
} from '../../../src/telemetry/archive-layout.js';
import type { IotHubMessageMeta } from '../../../src/telemetry/iothub-batch.js';
import type { DeadLetter } from '../../../src/telemetry/records.js';
import { record, seededRandom, shuffle } from './fixtures.js';

const at = (iso: string) => Date.parse(iso);
const byName = (blobs: readonly BlobBatch[]) => [...blobs].sort((a, b) => a.name.localeCompare(b.name));
const parsedLines = (blob: BlobBatch | undefined) =>
  (blob?.lines ?? []).map((l) => JSON.parse(l) as Record<string, unknown>);

function deadLetter(seq: number | undefined, body: unknown, enqueued?: string): DeadLetter {
  const meta: IotHubMessageMeta = {
    deviceId: 'dev-1',
    moduleId: undefined,
    sequenceNumber: seq,
    offset: undefined,
    enqueuedTimeMs: enqueued === undefined ? undefined : at(enqueued),
    properties: { subject: 'x' },
  };
  return { reason: 'invalid-json', detail: 'body is not JSON', meta, partitionId: '2', body };
}

describe('hourPath', () => {
  it('formats the UTC hour as yyyy/MM/dd/HH with zero padding', () => {
    expect(hourPath(at('2026-03-04T05:59:59.999Z'))).toBe('2026/03/04/05');
    expect(hourPath(at('2026-12-31T23:00:00+01:00'))).toBe('2026/12/31/22');
    expect(hourPath(0)).toBe('1970/01/01/00');
  });
});

describe('archiveBlobs', () => {
  it('names a blob {stream}/{yyyy}/{MM}/{dd}/{HH}/{partitionId}-{firstSeq}-{lastSeq}.jsonl', () => {
    const blobs = archiveBlobs([
      record(43, { a: 2 }, { partitionId: '7', enqueuedTimeMs: at('2026-01-02T03:20:00Z') }),
      record(42, { a: 1 }, { partitionId: '7', enqueuedTimeMs: at('2026-01-02T03:10:00Z') }),
    ]);
    expect(blobs.map((b) => b.name)).toEqual(['telemetry/2026/01/02/03/7-42-43.jsonl']);
    expect(parsedLines(blobs[0]).map((l) => l.sequenceNumber)).toEqual([42, 43]);
  });

  it('makes one blob per stream and per enqueued hour', () => {
    const blobs = archiveBlobs([
      record(1, { a: 1 }, { enqueuedTimeMs: at('2026-01-02T03:59:59Z') }),
      record(2, { a: 2 }, { enqueuedTimeMs: at('2026-01-02T04:00:00Z') }),
      record(3, { rssi: 1 }, { stream: 'diagnostics', enqueuedTimeMs: at('2026-01-02T03:59:59Z') }),
      record(4, { a: 3 }, { enqueuedTimeMs: at('2026-01-02T04:30:00Z') }),
      record(5, { x: 1 }, { stream: 'alerts', enqueuedTimeMs: at('2026-01-02T04:30:00Z') }),
    ]);
    expect(byName(blobs).map((b) => [b.name, parsedLines(b).map((l) => l.sequenceNumber)])).toEqual([
      ['alerts/2026/01/02/04/0-5-5.jsonl', [5]],
      ['diagnostics/2026/01/02/03/0-3-3.jsonl', [3]],
      ['telemetry/2026/01/02/03/0-1-1.jsonl', [1]],
      ['telemetry/2026/01/02/04/0-2-4.jsonl', [2, 4]],
    ]);
  });

  it('groups by enqueued time, not device time', () => {
    const blobs = archiveBlobs([
      record(
        1,
        { a: 1 },
        { enqueuedTimeMs: at('2026-01-02T03:00:00Z'), timestampMs: at('2025-06-01T00:00:00Z') },
      ),
    ]);
    expect(blobs.map((b) => b.name)).toEqual(['telemetry/2026/01/02/03/0-1-1.jsonl']);
  });

  it('orders the lines of a blob by sequence number, then record index', () => {
    const blobs = archiveBlobs(
      [
        record(9, { i: 'b' }, { recordIndex: 1 }),
        record(8, { i: 'a' }),
        record(9, { i: 'c' }, { recordIndex: 2 }),
        record(9, { i: 'a' }, { recordIndex: 0 }),
      ].map((r) => ({ ...r, enqueuedTimeMs: at('2026-01-02T03:00:00Z') })),
    );
    expect(parsedLines(blobs[0]).map((l) => [l.sequenceNumber, l.recordIndex])).toEqual([
      [8, 0],
      [9, 0],
      [9, 1],
      [9, 2],
    ]);
  });

  it('gives the same names and lines for shuffled input', () => {
    const hour = (h: number, m: number) =>
      at(`2026-01-02T${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:00Z`);
    const records = Array.from({ length: 30 }, (_, i) =>
      record(
        100 + Math.floor(i / 2),
        { v: i },
        {
          recordIndex: i % 2,
          stream: ['telemetry', 'diagnostics', 'metadata'][i % 3] ?? 'telemetry',
          enqueuedTimeMs: hour(3 + Math.floor(i / 10), i),
        },
      ),
    );
    const expected = byName(archiveBlobs(records));
    expect(expected.length).toBeGreaterThan(3);
    const random = seededRandom(42);
    for (let i = 0; i < 20; i++) {
      expect(byName(archiveBlobs(shuffle(records, random)))).toEqual(expected);
    }
  });

  it('writes one JSON line per record with the IoT Hub envelope and the original body', () => {
    const r = record(
      3,
      { temperature: 21 },
      {
        partitionId: '5',
        enqueuedTimeMs: at('2026-01-02T03:04:05Z'),
        timestampMs: at('2026-01-02T03:04:00Z'),
        timeSource: 'device',
        properties: { subject: 'telemetry' },
      },
    );
    expect(JSON.parse(archiveLine(r))).toEqual({
      deviceId: 'dev-1',
      partitionId: '5',
      sequenceNumber: 3,
      recordIndex: 0,
      offset: '3072',
      enqueuedTime: '2026-01-02T03:04:05.000Z',
      stream: 'telemetry',
      timestamp: '2026-01-02T03:04:00.000Z',
      timeSource: 'device',
      properties: { subject: 'telemetry' },
      body: { temperature: 21 },
    });
    expect(archiveLine(r)).not.toContain('\n');
  });

  it('returns no blob for no records', () => {
    expect(archiveBlobs([])).toEqual([]);
  });
});

describe('deadLetterBlob', () => {
  it('is undefined when there are no dead letters', () => {
    expect(deadLetterBlob([], '2')).toBeUndefined();
  });

  it('names the blob {yyyy}/{MM}/{dd}/{HH}/{partitionId}-{firstSeq}-{lastSeq}-h{hash}{suffix}.jsonl by the earliest enqueued time', () => {
    const letters = [
      deadLetter(12, 'x', '2026-01-02T04:00:00Z'),
      deadLetter(11, 'y', '2026-01-02T03:59:00Z'),
    ];
    const name = deadLetterBlob(letters, '2')?.name;
    expect(name).toMatch(/^2026\/01\/02\/03\/2-11-12-h[0-9a-f]{16}\.jsonl$/);
    expect(deadLetterBlob(letters, '2', '-state')?.name).toBe(name?.replace('.jsonl', '-state.jsonl'));
    // The hash is of the lines: the same letters, the same name; other letters of the same batch, another.
    expect(deadLetterBlob([...letters], '2')?.name).toBe(name);
    const other = [letters[0], deadLetter(11, 'z', '2026-01-02T03:59:00Z')].flatMap((d) => (d ? [d] : []));
    expect(deadLetterBlob(other, '2')?.name).toMatch(/^2026\/01\/02\/03\/2-11-12-h[0-9a-f]{16}\.jsonl$/);
    expect(deadLetterBlob(other, '2')?.name).not.toBe(name);
  });

  it('keeps UTF-8 text as it is and encodes other bytes in base64', () => {
    const bytes = Buffer.from([0xff, 0x00, 0x7b]);
    const blob = deadLetterBlob(
      [
        deadLetter(1, '{"broken', '2026-01-02T03:00:00Z'),
        deadLetter(2, bytes, '2026-01-02T03:00:00Z'),
        deadLetter(3, new Uint8Array([0x7b, 0x22, 0xc3, 0xa9]), '2026-01-02T03:00:00Z'),
      ],
      '2',
    );
    const [text, buffer, array] = parsedLines(blob);
    expect(text).toMatchObject({ bodyText: '{"broken' });
    expect(text).not.toHaveProperty('bodyBase64');
    expect(buffer).toMatchObject({ bodyBase64: '/wB7' });
    expect(buffer).not.toHaveProperty('bodyText');
    expect(array).toMatchObject({ bodyText: '{"é' });
  });

  it('does not overflow the stack on hundreds of thousands of dead letters (issue 11)', () => {
    const letters = Array.from({ length: 300_000 }, (_, i) =>
      deadLetter(i + 1, 'x', new Date(Date.UTC(2026, 0, 2, 5) - i * 10).toISOString()),
    );
    expect(deadLetterBlob(letters, '2')?.name).toMatch(/^2026\/01\/02\/04\/2-1-300000-h[0-9a-f]{16}\.jsonl$/);
  });

  it('writes the reason and the envelope', () => {
    expect(JSON.parse(deadLetterLine(deadLetter(4, { a: 1 }, '2026-01-02T03:00:00Z')))).toEqual({
      reason: 'invalid-json',
      detail: 'body is not JSON',
      deviceId: 'dev-1',
      partitionId: '2',
      sequenceNumber: 4,
      enqueuedTime: '2026-01-02T03:00:00.000Z',
      properties: { subject: 'x' },
      body: { a: 1 },
    });
  });

  it('falls back to the 1970 folder and a content hash without enqueued times or sequence numbers', () => {
    const blob = deadLetterBlob([deadLetter(undefined, 'x')], '2');
    expect(blob?.name).toMatch(/^1970\/01\/01\/00\/2-h[0-9a-f]{16}\.jsonl$/);
    expect(parsedLines(blob)[0]).not.toHaveProperty('enqueuedTime');
  });
});

describe('batchKey', () => {
  it('is the lowest and highest known sequence number', () => {
    expect(batchKey([7, undefined, 3, 9], ['a'])).toBe('3-9');
    expect(batchKey([0], ['a'])).toBe('0-0');
  });

  it('differs for a batch that starts at the same sequence number but ends elsewhere (replay, other boundaries)', () => {
    expect(batchKey([100, 150], ['a'])).not.toBe(batchKey([100, 599], ['a']));
  });

  it("falls back to an 'h'-prefixed hash of the lines when there are no sequence numbers", () => {
    const key = batchKey([undefined, undefined], ['line 1', 'line 2']);
    expect(key).toMatch(/^h[0-9a-f]{16}$/);
    expect(batchKey([], ['line 1', 'line 2'])).toBe(key);
    expect(batchKey([], ['line 1', 'line 3'])).not.toBe(key);
    expect(batchKey([], ['line 2', 'line 1'])).not.toBe(key);
  });
});
