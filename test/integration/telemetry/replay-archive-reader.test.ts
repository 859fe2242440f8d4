import { InvocationContext } from '@azure/functions';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAdapters } from '../../../src/infra/adapters.js';
import { makeIngestTelemetry } from '../../../src/telemetry/ingest-telemetry.js';
import { parseArchiveLine } from '../../../src/telemetry/replay-envelope.js';
import { listArchiveGroups, readGroupMessages } from '../../../tools/replay/archive-reader.js';
import { replayArchive } from '../../../tools/replay/replay-archive.js';
import { readContainer } from '../../support/blobs.js';
import { iotHubBatch, type TestMessage } from '../../support/iothub-batch.js';
import { testConfig } from '../../support/local-env.js';
import { archivedApp, START_MS, type ArchivedApp } from './replay-fixture.js';

const HOUR = 3_600_000;
const sum = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);

/** What the archive holds, de-duplicated on (partition, sequence number, record index), per `stream hour`. */
async function archiveCounts(app: ArchivedApp, keep: (deviceId: string, enqueuedMs: number) => boolean) {
  const connection = 'connectionString' in app.config.storage ? app.config.storage.connectionString : '';
  const blobs = await readContainer(connection, app.config.storage.rawArchiveContainer);
  const seen = new Set<string>();
  const counts = new Map<string, number>();
  for (const [name, text] of blobs) {
    for (const line of text.split('\n').filter(Boolean)) {
      const r = parseArchiveLine(line);
      if (!r) throw new Error(`unreadable line in ${name}`);
      const id = `${r.partitionId}/${r.sequenceNumber}/${r.recordIndex}`;
      if (seen.has(id) || !keep(r.deviceId, r.enqueuedTimeMs)) continue;
      seen.add(id);
      const key = `${r.stream} ${name.split('/').slice(1, 5).join('/')}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

describe('npm run replay: reading the archive (Azurite, dry run)', () => {
  let app: ArchivedApp;
  beforeAll(async () => {
    app = await archivedApp(40, 2_000);
  }, 120_000);

  it('counts every archived record per stream and hour, and sends nothing', async () => {
    const summary = await replayArchive({
      container: app.archiveContainer,
      hub: 'replay',
      fromMs: START_MS,
      toMs: START_MS + 3 * HOUR,
      dryRun: true,
    });
    expect(summary.records).toBe(app.records);
    expect(summary.messages).toBe(app.messages);
    expect(summary.batches).toBe(0);
    expect(new Map([...summary.counts].sort())).toEqual(
      new Map([...(await archiveCounts(app, () => true))].sort()),
    );
    expect([...summary.counts.keys()].some((k) => k.startsWith('gps '))).toBe(true);
  });

  it('lists only the prefixes of the hours in the range, and reads only their blobs', async () => {
    const from = START_MS + HOUR + 15 * 60_000; // 09:15–09:45
    const to = from + 30 * 60_000;
    const summary = await replayArchive({
      container: app.archiveContainer,
      hub: 'replay',
      fromMs: from,
      toMs: to,
      dryRun: true,
    });
    expect(summary.listedPrefixes.sort()).toEqual([
      'diagnostics/2026/11/23/09/',
      'gps/2026/11/23/09/',
      'telemetry/2026/11/23/09/',
    ]);
    const inHour = sum(await archiveCounts(app, (_, t) => t >= START_MS + HOUR && t < START_MS + 2 * HOUR));
    const inRange = sum(await archiveCounts(app, (_, t) => t >= from && t < to));
    expect(summary.records).toBe(inRange);
    expect(inRange).toBeGreaterThan(0);
    expect(inRange).toBeLessThan(inHour);
    const connection = 'connectionString' in app.config.storage ? app.config.storage.connectionString : '';
    const allBlobs = [...(await readContainer(connection, app.config.storage.rawArchiveContainer)).keys()];
    expect(summary.blobs).toBe(allBlobs.filter((n) => n.includes('/2026/11/23/09/')).length);
    expect(summary.blobs).toBeLessThan(allBlobs.length);
  });

  it('--stream and --device keep only those records', async () => {
    const summary = await replayArchive({
      container: app.archiveContainer,
      hub: 'replay',
      fromMs: START_MS,
      toMs: START_MS + 3 * HOUR,
      streams: ['telemetry'],
      devices: new Set(['dev-3', 'dev-17']),
      dryRun: true,
    });
    const expected = await archiveCounts(app, (d) => d === 'dev-3' || d === 'dev-17');
    const telemetry = [...expected].filter(([k]) => k.startsWith('telemetry '));
    expect(new Map([...summary.counts].sort())).toEqual(new Map(telemetry.sort()));
    expect(summary.listedPrefixes.every((p) => p.startsWith('telemetry/'))).toBe(true);
  });

  it('reads each partition in sequence order', async () => {
    const groups = await listArchiveGroups(app.archiveContainer, {
      fromMs: START_MS,
      toMs: START_MS + 3 * HOUR,
    });
    expect(groups.map((g) => g.key)).toEqual(
      ['08', '09', '10'].flatMap((h) => ['0', '1', '2', '3'].map((p) => `2026/11/23/${h}|${p}`)),
    );
    for (const group of groups) {
      const seqs: number[] = [];
      for await (const chunk of readGroupMessages(app.archiveContainer, group, { fromMs: 0, toMs: Infinity }))
        for (const m of chunk) seqs.push(m.sequenceNumber);
      expect(seqs.length).toBeGreaterThan(0);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
    }
  });
});

describe('npm run replay: overlapping blobs (a batch archived twice with other boundaries)', () => {
  it('sends each record once, in order', async () => {
    const config = testConfig();
    const adapters = createAdapters(config);
    const ingest = makeIngestTelemetry({ ...adapters, options: config.ingest });
    const messages: TestMessage[] = Array.from({ length: 60 }, (_, i) => ({
      deviceId: `d${i % 3}`,
      sequenceNumber: 100 + i,
      body: i % 4 === 0 ? [{ a: i }, { b: i }] : { a: i },
    }));
    // 100..139, then a new owner from 120 (its checkpoint was older), then 100..159 again: three overlapping blobs.
    for (const slice of [messages.slice(0, 40), messages.slice(20), messages]) {
      const { bodies, triggerMetadata } = iotHubBatch(slice, '2');
      await ingest(bodies, new InvocationContext({ triggerMetadata }));
    }
    const connection = 'connectionString' in config.storage ? config.storage.connectionString : '';
    const blobs = await readContainer(connection, config.storage.rawArchiveContainer);
    expect([...blobs.keys()].sort()).toEqual([
      'telemetry/2026/11/23/10/2-100-139.jsonl',
      'telemetry/2026/11/23/10/2-100-159.jsonl',
      'telemetry/2026/11/23/10/2-120-159.jsonl',
    ]);
    const { BlobServiceClient } = await import('@azure/storage-blob');
    const container = BlobServiceClient.fromConnectionString(connection).getContainerClient(
      config.storage.rawArchiveContainer,
    );
    // A range of 57 years: the listing descends only into folders that exist.
    const listed: string[] = [];
    const [group] = await listArchiveGroups(container, { fromMs: 0, toMs: Date.UTC(2027, 0) }, listed);
    expect(listed).toEqual(['telemetry/2026/11/23/10/']);
    if (!group) throw new Error('no group');
    const seen: string[] = [];
    for await (const chunk of readGroupMessages(container, group, { fromMs: 0, toMs: Infinity }))
      for (const m of chunk) for (const r of m.records) seen.push(`${m.sequenceNumber}.${r.recordIndex}`);
    const expected = messages.flatMap((m) =>
      Array.isArray(m.body) ? [`${m.sequenceNumber}.0`, `${m.sequenceNumber}.1`] : [`${m.sequenceNumber}.0`],
    );
    expect(seen).toEqual(expected);
  });
});
