import type { TelemetryRecord } from '../../../src/telemetry/records.js';

export const BASE_MS = Date.UTC(2026, 10, 23, 10, 0, 0);

/** An accepted record as parseMessage would produce it; `seq` also sets the enqueued time (BASE + seq s). */
export function record(
  seq: number,
  payload: Record<string, unknown>,
  overrides: Partial<Omit<TelemetryRecord, 'sequenceNumber' | 'payload'>> = {},
): TelemetryRecord {
  const enqueuedTimeMs = overrides.enqueuedTimeMs ?? BASE_MS + seq * 1000;
  return {
    deviceId: 'dev-1',
    moduleId: undefined,
    partitionId: '0',
    sequenceNumber: seq,
    recordIndex: 0,
    offset: String(seq * 1024),
    enqueuedTimeMs,
    stream: 'telemetry',
    version: undefined,
    timestampMs: enqueuedTimeMs,
    timeSource: 'enqueued',
    timestampField: undefined,
    payload,
    source: undefined,
    properties: {},
    ...overrides,
  };
}

/** A small seeded PRNG (mulberry32), so that "random" orders are the same on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates with the given random source. */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
