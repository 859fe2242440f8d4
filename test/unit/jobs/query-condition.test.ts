import { describe, expect, it } from 'vitest';
import {
  MAX_QUERY_CONDITION_BYTES,
  buildQueryCondition,
  splitDeviceIds,
} from '../../../src/jobs/query-condition.js';
import { UnprocessableRequestError } from '../../../src/shared/errors.js';

describe('buildQueryCondition (IoT Hub job query conditions from validated targets only)', () => {
  it('writes device ids, status and tags as one AND condition', () => {
    expect(
      buildQueryCondition({
        deviceIds: ['a-1', 'b:2'],
        status: 'enabled',
        tags: { 'site.building': 'north', floor: 3, critical: true },
      }),
    ).toBe(
      "deviceId IN ['a-1', 'b:2'] AND status = 'enabled' AND tags.site.building = 'north' AND tags.floor = 3 AND tags.critical = true",
    );
  });

  it.each([
    [{ deviceIds: ["o'brien"] }, 'deviceIds[0]'],
    [{ tags: { site: "x' OR 1=1 --" } }, 'tags.site'],
    [{ tags: { 'bad key': 'x' } }, 'tags.bad key'],
    [{ tags: { n: Number.NaN } }, 'tags.n'],
    [{}, 'target'],
  ])('refuses %j instead of writing it into a condition', (target, path) => {
    let error: unknown;
    try {
      buildQueryCondition(target);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UnprocessableRequestError);
    expect((error as UnprocessableRequestError).errors.map((e) => e.path)).toContain(path);
  });

  it('refuses a condition over 8 KB', () => {
    const deviceIds = Array.from({ length: 400 }, (_, i) => `device-${String(i).padStart(20, '0')}`);
    expect(() => buildQueryCondition({ deviceIds })).toThrow(UnprocessableRequestError);
  });
});

describe('splitDeviceIds', () => {
  it('splits ids into batches whose conditions each fit in 8 KB, in order and without loss', () => {
    const deviceIds = Array.from({ length: 2000 }, (_, i) => `device-${i}-${'x'.repeat(i % 50)}`);
    const rest = { status: 'enabled' as const, tags: { site: 'north' } };
    const batches = splitDeviceIds(deviceIds, rest);
    expect(batches.length).toBeGreaterThan(5);
    expect(batches.flat()).toEqual(deviceIds);
    for (const batch of batches) {
      const condition = buildQueryCondition({ ...rest, deviceIds: batch });
      expect(Buffer.byteLength(condition)).toBeLessThanOrEqual(MAX_QUERY_CONDITION_BYTES);
    }
    // Batches are full: adding the next id to any batch but the last would pass the limit.
    const first = batches[0] ?? [];
    const next = batches[1]?.[0] ?? '';
    expect(() => buildQueryCondition({ ...rest, deviceIds: [...first, next] })).toThrow(
      UnprocessableRequestError,
    );
  });
});
