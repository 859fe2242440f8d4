/**
 * The soak benchmark's short run (issue 13, item 5): 50 simulated devices × 2 messages/s for half a minute
 * through the embedded runtime. What is asserted is what must hold at any length: every message accepted, RSS
 * sampled at the three checkpoints, and nothing kept once ingest caught up (the in-process hubs used to keep
 * every event forever). The growth figure itself is printed, not asserted (half a minute is all warm-up).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { formatCheckpoint, runSoak, soakCheckpoints } from '../../../bench/soak-run.js';
import { testEventHubs, testSettings } from '../../support/local-env.js';
import { transpileToTemp } from '../../support/transpile.js';

const root = transpileToTemp([
  'tools/simulate.ts',
  'tools/simulated-readings.ts',
  'src/provisioning/sas-token.ts',
]);
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('soak (short run)', () => {
  it(
    '50 devices × 2 msg/s for 30 s: all accepted, three RSS samples, nothing kept afterwards',
    { timeout: 180_000 },
    async () => {
      const settings = testSettings();
      const report = await runSoak({
        // This file's own Event Hubs endpoint: no other file's runtime reads or checkpoints its hubs.
        services: {
          ...inject('localServices'),
          eventHubsConnectionString: testEventHubs.connectionString,
          eventHubsRetained: testEventHubs.retained,
        },
        minutes: 0.5,
        devices: 50,
        perDeviceRate: 2,
        simulator: join(root, 'dist/tools/simulate.js'),
        functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
        settings: {
          CosmosDbDatabaseName: settings.CosmosDbDatabaseName ?? '',
          RawArchiveContainerName: settings.RawArchiveContainerName ?? '',
          DeadLetterContainerName: settings.DeadLetterContainerName ?? '',
        },
        log: () => undefined,
      });
      console.log(report.checkpoints.map(formatCheckpoint).join('\n'));
      console.log(`growth after warm-up ${(report.growthAfterWarmUp * 100).toFixed(1)} %`);
      expect(report.checkpoints.map((c) => c.minute)).toEqual([0.08, 0.25, 0.5]);
      for (const c of report.checkpoints) expect(c.rssBytes).toBeGreaterThan(0);
      expect(report.sent).toBeGreaterThan(0);
      // Busy answers and lost connections are retried as a device SDK retries them; none may be left over.
      expect(report.refusedBy).toEqual({});
      expect(report.refused).toBe(0);
      // Ingest checkpointed every event; the endpoint still keeps every accepted one (its retention, not reads,
      // bounds it; the anomalies hub's records come on top).
      expect(report.ingestBacklog).toBe(0);
      expect(report.drained.hubEvents).toBeGreaterThanOrEqual(report.sent);
      expect(report.drained.rules.devices).toBeLessThanOrEqual(50);
      expect(report.drained.methodRequests).toBe(0);
      expect(report.judged).toBe(false);
      // Document sizes are sampled: the devices' catalog entries at least.
      expect(report.checkpoints[0]?.documents.devices?.count).toBe(50);
    },
  );

  it('samples after the 5-minute warm-up and every 5 minutes; shorter runs at 1/6, 1/2 and the end', () => {
    expect(soakCheckpoints(15)).toEqual([5, 10, 15]);
    expect(soakCheckpoints(30)).toEqual([5, 10, 15, 20, 25, 30]);
    expect(soakCheckpoints(12)).toEqual([5, 10, 12]);
    expect(soakCheckpoints(0.5)).toEqual([0.5 / 6, 0.25, 0.5]);
  });
});
