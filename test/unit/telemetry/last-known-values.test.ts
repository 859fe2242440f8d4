import { describe, expect, it } from 'vitest';
import {
  mergeState,
  projectBatch,
  type DeviceDelta,
  type DeviceState,
} from '../../../src/telemetry/last-known-values.js';
import type { TelemetryRecord } from '../../../src/telemetry/records.js';
import { BASE_MS, record, seededRandom, shuffle } from './fixtures.js';

const iso = (ms: number) => new Date(ms).toISOString();

function deltaOf(records: readonly TelemetryRecord[], deviceId = 'dev-1'): DeviceDelta {
  const delta = projectBatch(records).get(deviceId);
  if (!delta) throw new Error(`no delta for ${deviceId}`);
  return delta;
}

/** Merges the records one delta at a time, keeping the state when a merge changes nothing. */
function foldOneByOne(records: readonly TelemetryRecord[]): DeviceState {
  let state: DeviceState | undefined;
  for (const r of records) state = mergeState(state, deltaOf([r])) ?? state;
  if (!state) throw new Error('no state');
  return state;
}

function mergeAll(records: readonly TelemetryRecord[]): DeviceState {
  const state = mergeState(undefined, deltaOf(records));
  if (!state) throw new Error('no state');
  return state;
}

const valuesOf = (section: DeviceState['telemetry']) =>
  Object.fromEntries(Object.entries(section).map(([name, fv]) => [name, fv.value]));

describe('projectBatch', () => {
  it('makes one delta per device', () => {
    const deltas = projectBatch([
      record(1, { t: 1 }, { deviceId: 'a' }),
      record(2, { t: 2 }, { deviceId: 'b' }),
      record(3, { t: 3 }, { deviceId: 'a' }),
    ]);
    expect([...deltas.keys()].sort()).toEqual(['a', 'b']);
    expect(deltas.get('a')?.sections.telemetry.t?.value).toBe(3);
    expect(deltas.get('a')).toMatchObject({ minEnqueuedMs: BASE_MS + 1000, maxEnqueuedMs: BASE_MS + 3000 });
  });

  it('records where each value came from', () => {
    const delta = deltaOf([
      record(
        7,
        { rssi: -70 },
        { stream: 'diagnostics', recordIndex: 2, version: '1.4', timeSource: 'device' },
      ),
    ]);
    expect(delta.sections.diagnostics.rssi).toEqual({
      value: -70,
      timestamp: iso(BASE_MS + 7000),
      timeSource: 'device',
      sequenceNumber: 7,
      recordIndex: 2,
      version: '1.4',
    });
    const unversioned = deltaOf([record(8, { rssi: -71 })]).sections.telemetry.rssi;
    expect(unversioned && Object.keys(unversioned)).not.toContain('version');
  });

  it('does not project the timestamp field or the convention fields', () => {
    const delta = deltaOf([
      record(
        1,
        { ts: '2026-11-23T09:00:00Z', _subject: 'telemetry', _version: '1', temperature: 20 },
        { timestampField: 'ts' },
      ),
    ]);
    expect(Object.keys(delta.sections.telemetry)).toEqual(['temperature']);
  });
});

describe('mergeState', () => {
  it('creates the state from the first delta', () => {
    const state = mergeAll([
      record(1, { temperature: 20, humidity: 40 }),
      record(2, { firmware: '1.0' }, { stream: 'metadata' }),
    ]);
    expect(state).toMatchObject({
      deviceId: 'dev-1',
      sequenceNumbers: { '0': 2 },
      firstSeen: iso(BASE_MS + 1000),
      lastSeen: iso(BASE_MS + 2000),
      counts: { messages: 2, records: { telemetry: 1, metadata: 1 } },
    });
    expect(valuesOf(state.telemetry)).toEqual({ temperature: 20, humidity: 40 });
    expect(valuesOf(state.metadata)).toEqual({ firmware: '1.0' });
    expect(valuesOf(state.diagnostics)).toEqual({});
  });

  it('is idempotent: the same delta merged twice changes nothing the second time', () => {
    const delta = deltaOf([record(1, { temperature: 20 }), record(2, { temperature: 21, humidity: 40 })]);
    const once = mergeState(undefined, delta);
    expect(once).toBeDefined();
    expect(mergeState(once, delta)).toBeUndefined();
  });

  it('changes nothing when an older batch is replayed after newer ones', () => {
    const older = deltaOf([record(1, { temperature: 20 })]);
    const newer = deltaOf([record(2, { temperature: 21 })]);
    const state = mergeState(mergeState(undefined, older), newer);
    expect(mergeState(state, older)).toBeUndefined();
    expect(state?.telemetry.temperature?.value).toBe(21);
  });

  it('keeps the value with the later device timestamp, whatever the sequence numbers say', () => {
    const late = record(10, { temperature: 25 }, { timestampMs: BASE_MS + 60_000, timeSource: 'device' });
    const early = record(11, { temperature: 15 }, { timestampMs: BASE_MS, timeSource: 'device' });
    for (const order of [
      [late, early],
      [early, late],
    ]) {
      expect(mergeAll(order).telemetry.temperature?.value).toBe(25);
      expect(foldOneByOne(order).telemetry.temperature?.value).toBe(25);
    }
  });

  it('breaks a tie on timestamp by sequence number, then by record index', () => {
    const at = { timestampMs: BASE_MS };
    const bySeq = [record(5, { v: 'seq5' }, at), record(6, { v: 'seq6' }, at)];
    const byIndex = [
      record(5, { v: 'index0' }, { ...at, recordIndex: 0 }),
      record(5, { v: 'index1' }, { ...at, recordIndex: 1 }),
    ];
    for (const order of [bySeq, [...bySeq].reverse()]) {
      expect(mergeAll(order).telemetry.v?.value).toBe('seq6');
      expect(foldOneByOne(order).telemetry.v?.value).toBe('seq6');
    }
    for (const order of [byIndex, [...byIndex].reverse()]) {
      expect(mergeAll(order).telemetry.v?.value).toBe('index1');
      expect(foldOneByOne(order).telemetry.v?.value).toBe('index1');
    }
  });

  it('counts records of unknown streams without projecting them', () => {
    const state = mergeAll([
      record(1, { temperature: 20 }),
      record(2, { alarm: 'door-open' }, { stream: 'alerts' }),
    ]);
    expect(state.counts).toEqual({ messages: 2, records: { telemetry: 1, alerts: 1 } });
    expect(valuesOf(state.telemetry)).toEqual({ temperature: 20 });
    expect(state).not.toHaveProperty('alerts');
    expect(JSON.stringify(state)).not.toContain('door-open');
  });

  it('counts every record of a multi-record message once, and the message once', () => {
    const state = mergeAll([
      record(3, { a: 1 }, { recordIndex: 0 }),
      record(3, { a: 2 }, { recordIndex: 1 }),
      record(3, { rssi: 1 }, { recordIndex: 2, stream: 'diagnostics' }),
    ]);
    expect(state.counts).toEqual({ messages: 1, records: { telemetry: 2, diagnostics: 1 } });
  });

  describe('per-partition sequence-number watermark', () => {
    const stored = mergeAll([record(5, { temperature: 19 }), record(10, { temperature: 20 })]);

    it('does not count a replayed lower sequence number on the same partition', () => {
      expect(stored.counts.messages).toBe(2);
      expect(mergeState(stored, deltaOf([record(5, { temperature: 19 })]))).toBeUndefined();

      // A field not seen before makes the merge write, but the replayed message is still not counted.
      const next = mergeState(stored, deltaOf([record(5, { humidity: 40 })]));
      expect(next?.telemetry.humidity?.value).toBe(40);
      expect(next?.counts).toEqual(stored.counts);
      expect(next?.sequenceNumbers).toEqual({ '0': 10 });
    });

    it('does not count the watermark itself again', () => {
      const next = mergeState(stored, deltaOf([record(10, { humidity: 40 })]));
      expect(next?.counts).toEqual(stored.counts);
    });

    it('counts the same sequence number on another partition', () => {
      const next = mergeState(stored, deltaOf([record(5, { temperature: 19 }, { partitionId: '1' })]));
      expect(next?.counts).toEqual({ messages: 3, records: { telemetry: 3 } });
      expect(next?.sequenceNumbers).toEqual({ '0': 10, '1': 5 });
      // Counted, but the older reading does not replace the newer one.
      expect(next?.telemetry.temperature?.value).toBe(20);
    });

    it('counts only the new messages of a batch that mixes new and replayed ones', () => {
      const next = mergeState(
        stored,
        deltaOf([record(9, { a: 1 }), record(12, { a: 2 }), record(11, { a: 3 })]),
      );
      expect(next?.sequenceNumbers).toEqual({ '0': 12 });
      expect(next?.counts).toEqual({ messages: 4, records: { telemetry: 4 } });
    });
  });

  it('widens firstSeen and lastSeen, never narrows them', () => {
    const state = mergeAll([record(5, { a: 1 })]);
    const earlier = mergeState(state, deltaOf([record(1, { a: 0 }, { partitionId: '1' })]));
    expect(earlier?.firstSeen).toBe(iso(BASE_MS + 1000));
    expect(earlier?.lastSeen).toBe(iso(BASE_MS + 5000));
    const later = mergeState(earlier, deltaOf([record(9, { a: 2 })]));
    expect(later?.firstSeen).toBe(iso(BASE_MS + 1000));
    expect(later?.lastSeen).toBe(iso(BASE_MS + 9000));
  });

  it('does not modify the state it is given', () => {
    const state = mergeAll([record(1, { temperature: 20 })]);
    const snapshot = structuredClone(state);
    mergeState(state, deltaOf([record(2, { temperature: 21, humidity: 40 }, { partitionId: '1' })]));
    expect(state).toEqual(snapshot);
  });

  it('stores a __proto__ field as data without polluting Object.prototype', () => {
    const payload = JSON.parse('{"__proto__": {"polluted": true}, "constructor": "c", "x": 1}') as Record<
      string,
      unknown
    >;
    const state = mergeAll([record(1, payload)]);
    expect(Object.hasOwn(state.telemetry, '__proto__')).toBe(true);
    expect(state.telemetry['__proto__']?.value).toEqual({ polluted: true });
    const constructorKey: string = 'constructor';
    expect(state.telemetry[constructorKey]?.value).toBe('c');
    expect(Object.keys(state.telemetry).sort()).toEqual(['__proto__', 'constructor', 'x']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');

    // The same after a round trip through JSON, as the state store does.
    const stored = JSON.parse(JSON.stringify(state)) as DeviceState;
    const next = mergeState(
      stored,
      deltaOf([record(2, JSON.parse('{"__proto__": 2}') as Record<string, unknown>)]),
    );
    expect(next?.telemetry['__proto__']?.value).toBe(2);
    expect(next?.telemetry.x?.value).toBe(1);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  describe('order independence', () => {
    // Device time deliberately disagrees with sequence order in places, and some timestamps tie.
    const t = (s: number) => ({ timestampMs: BASE_MS + s * 1000, timeSource: 'device' as const });
    const records: TelemetryRecord[] = [
      record(1, { temperature: 20, humidity: 40 }, t(1)),
      record(2, { temperature: 21 }, t(5)),
      record(3, { temperature: 22, humidity: 41 }, t(3)),
      record(4, { temperature: 23 }, t(5)),
      record(5, { a: 1 }, { ...t(6), recordIndex: 0 }),
      record(5, { a: 2 }, { ...t(6), recordIndex: 1 }),
      record(5, { a: 3, humidity: 39 }, { ...t(2), recordIndex: 2 }),
      record(6, { rssi: -80, battery: 90 }, { ...t(4), stream: 'diagnostics' }),
      record(7, { rssi: -70 }, { ...t(4), stream: 'diagnostics' }),
      record(8, { battery: 80 }, { ...t(3), stream: 'diagnostics' }),
      record(9, { firmware: '1.0' }, { ...t(1), stream: 'metadata', version: '1' }),
      record(10, { firmware: '1.1' }, { ...t(8), stream: 'metadata', version: '2' }),
      record(11, { firmware: '0.9' }, { ...t(7), stream: 'metadata' }),
      record(12, { alarm: true }, { ...t(9), stream: 'alerts' }),
    ];
    const expected = mergeAll(records);

    it('the reference result is what last-writer-wins by (timestamp, sequence, index) gives', () => {
      expect(valuesOf(expected.telemetry)).toEqual({ temperature: 23, humidity: 41, a: 2 });
      expect(valuesOf(expected.diagnostics)).toEqual({ rssi: -70, battery: 90 });
      expect(valuesOf(expected.metadata)).toEqual({ firmware: '1.1' });
      expect(expected.metadata.firmware?.version).toBe('2');
    });

    it('50 seeded permutations folded one record per delta give the same sections and first/last seen', () => {
      const random = seededRandom(20261123);
      for (let i = 0; i < 50; i++) {
        const order = shuffle(records, random);
        const state = foldOneByOne(order);
        const { telemetry, diagnostics, metadata, firstSeen, lastSeen } = state;
        expect({ telemetry, diagnostics, metadata, firstSeen, lastSeen }, `permutation ${i}`).toEqual({
          telemetry: expected.telemetry,
          diagnostics: expected.diagnostics,
          metadata: expected.metadata,
          firstSeen: expected.firstSeen,
          lastSeen: expected.lastSeen,
        });
      }
    });

    it('permutations within one batch give the same state, counts included', () => {
      const random = seededRandom(7);
      for (let i = 0; i < 50; i++) {
        expect(mergeAll(shuffle(records, random)), `permutation ${i}`).toEqual(expected);
      }
    });
  });
});
