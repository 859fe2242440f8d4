import { describe, expect, it } from 'vitest';
import { makeGetHealth, type HealthProbe } from '../../../src/health/health.js';

const ok = (name: string): HealthProbe => ({ name, check: () => Promise.resolve() });
const failing = (name: string): HealthProbe => ({
  name,
  check: () => Promise.reject(new Error('connect ECONNREFUSED 10.1.2.3:443 key=secret')),
});
/** Answers only when aborted: stands for a dependency that never answers. */
const hanging = (name: string): HealthProbe => ({
  name,
  check: (signal) =>
    new Promise((_resolve, reject) => {
      signal.addEventListener('abort', () => {
        reject(new Error('aborted'));
      });
    }),
});

describe('GET /api/health (src/health/health.ts)', () => {
  it('is 200 with every dependency ok, each with a latency', async () => {
    const response = await makeGetHealth({ probes: [ok('cosmos'), ok('blob')] })();
    expect(response.status).toBe(200);
    expect(response.jsonBody.status).toBe('ok');
    expect(response.jsonBody.dependencies.map((d) => [d.name, d.status])).toEqual([
      ['cosmos', 'ok'],
      ['blob', 'ok'],
    ]);
    for (const d of response.jsonBody.dependencies) expect(d.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it('is 503 naming the failing and the silent dependency, without their error messages', async () => {
    const response = await makeGetHealth({
      probes: [failing('cosmos'), ok('blob'), hanging('identityStore')],
      timeoutMs: 50,
    })();
    expect(response.status).toBe(503);
    expect(response.headers['retry-after']).toBeDefined();
    expect(response.jsonBody.dependencies).toMatchObject([
      { name: 'cosmos', status: 'unavailable', reason: 'error' },
      { name: 'blob', status: 'ok' },
      { name: 'identityStore', status: 'unavailable', reason: 'timeout' },
    ]);
    const text = JSON.stringify(response.jsonBody);
    expect(text).not.toContain('10.1.2.3');
    expect(text).not.toContain('secret');
  });

  it('probes once per cache period, however many requests come', async () => {
    let checks = 0;
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const getHealth = makeGetHealth({
      probes: [
        {
          name: 'cosmos',
          check: () => {
            checks++;
            return Promise.resolve();
          },
        },
      ],
      cacheMs: 5_000,
      now: () => new Date(clock),
    });
    await Promise.all([getHealth(), getHealth(), getHealth()]);
    clock += 4_999;
    await getHealth();
    expect(checks).toBe(1);
    clock += 1;
    await getHealth();
    expect(checks).toBe(2);
  });
});
