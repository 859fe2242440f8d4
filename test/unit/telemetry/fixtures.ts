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

export { seededRandom } from '../../../tools/seeded-random.js';

/** Fisher–Yates with the given random source. */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
