/**
 * `npm run bench`: ingestTelemetry against a naive baseline on the local emulators, plus the CPU-only path
 * against bare JSON.parse. Each scenario runs in its own child process so its peak RSS is its own.
 *
 * Workload: 10,000 events from 100 devices. Devices hash to 4 partitions (IoT Hub's default partition count),
 * so a batch holds the events of one partition, as the Event Hubs trigger delivers them.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { CosmosClient } from '@azure/cosmos';
import { BlobServiceClient } from '@azure/storage-blob';
import { Agent } from 'node:https';
import { loadConfig } from '../src/config.js';
import { createAdapters } from '../src/infra/adapters.js';
import { archiveBlobs } from '../src/telemetry/archive-layout.js';
import { DEFAULT_INGEST_OPTIONS } from '../src/telemetry/ingest-options.js';
import { makeIngestTelemetry, type TriggerContext } from '../src/telemetry/ingest-telemetry.js';
import { readIotHubBatchMetadata } from '../src/telemetry/iothub-batch.js';
import { projectBatch } from '../src/telemetry/last-known-values.js';
import { parseMessage, type TelemetryRecord } from '../src/telemetry/records.js';
import { iotHubBatch, type TestMessage } from '../tools/iothub-trigger-metadata.js';
import { localAppSettings, startLocalServices } from '../tools/local-services.js';

const EVENTS = 10_000;
const DEVICES = 100;
const PARTITIONS = 4;
const BATCH_SIZES = [100, 1000];
const CONCURRENCY = 16;

interface Result {
  scenario: string;
  batchSize: number;
  seconds: number;
  eventsPerSecond: number;
  batches: number;
  cosmosWritesPerBatch: number;
  blobWritesPerBatch: number;
  peakRssMiB: number;
}

/**
 * Per partition, its events in order: each device sends a key frame every 10th message, differential otherwise.
 * `wide` bodies (CPU path only) add 16 more readings and a nested location: about 500 bytes instead of 90.
 */
function workload(wide = false): Map<string, TestMessage[]> {
  const partitions = new Map<string, TestMessage[]>();
  const seq = new Map<string, number>();
  const start = Date.UTC(2026, 10, 23, 8, 0, 0);
  for (let i = 0; i < EVENTS; i++) {
    const device = i % DEVICES;
    const round = Math.floor(i / DEVICES);
    const partitionId = String(device % PARTITIONS);
    const t = start + i * 100;
    const body: Record<string, unknown> = {
      ts: new Date(t).toISOString(),
      temperature: 20 + ((device * 7 + round) % 50) / 10,
      humidity: 40 + ((device + round * 3) % 30),
    };
    if (round % 10 === 0)
      Object.assign(body, { pressure: 1013, battery: 100 - round, firmware: '1.4.2', model: 'TH-1' });
    if (wide) {
      for (let k = 1; k <= 16; k++) body[`sensor${String(k).padStart(2, '0')}`] = (device * k + round) / 7;
      body.location = { lat: 47.6 + device / 1000, lon: -122.3 - device / 1000 };
    }
    const n = (seq.get(partitionId) ?? 0) + 1;
    seq.set(partitionId, n);
    const list = partitions.get(partitionId) ?? [];
    list.push({
      deviceId: `device-${String(device).padStart(3, '0')}`,
      sequenceNumber: n,
      enqueuedTime: new Date(t + 50).toISOString(),
      body: Buffer.from(JSON.stringify(body)),
    });
    partitions.set(partitionId, list);
  }
  return partitions;
}

function batchesOf(size: number, wide = false): { partitionId: string; messages: TestMessage[] }[][] {
  // One list of batches per partition; partitions are processed in parallel, batches within one in order.
  return [...workload(wide)].map(([partitionId, messages]) => {
    const out = [];
    for (let i = 0; i < messages.length; i += size)
      out.push({ partitionId, messages: messages.slice(i, i + size) });
    return out;
  });
}

const quietContext = (triggerMetadata: Record<string, unknown>): TriggerContext => ({
  triggerMetadata,
  log: () => undefined,
  warn: () => undefined,
  error: () => undefined,
});

async function runPartitions(
  partitions: { partitionId: string; messages: TestMessage[] }[][],
  handle: (batch: {
    partitionId: string;
    messages: TestMessage[];
  }) => Promise<{ cosmos: number; blobs: number }>,
) {
  let cosmos = 0;
  let blobs = 0;
  let batches = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    partitions.map(async (list) => {
      for (const batch of list) {
        const r = await handle(batch);
        cosmos += r.cosmos;
        blobs += r.blobs;
        batches += 1;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, cosmos, blobs, batches };
}

async function scenarioOurs(batchSize: number): Promise<Omit<Result, 'peakRssMiB'>> {
  const config = loadConfig();
  const ingest = makeIngestTelemetry({ ...createAdapters(config), options: config.ingest });
  const r = await runPartitions(batchesOf(batchSize), async ({ partitionId, messages }) => {
    const { bodies, triggerMetadata } = iotHubBatch(messages, partitionId);
    const s = await ingest(bodies, quietContext(triggerMetadata));
    return { cosmos: s.stateWrites, blobs: s.archiveBlobs + (s.deadLetters > 0 ? 1 : 0) };
  });
  return summarize('ingestTelemetry', batchSize, r);
}

/** The baseline: one Cosmos upsert and one blob per event, with the same parallelism. */
async function scenarioNaive(batchSize: number): Promise<Omit<Result, 'peakRssMiB'>> {
  const config = loadConfig();
  const cosmos = new CosmosClient({
    endpoint: config.cosmos.endpoint,
    key: config.cosmos.key ?? '',
    agent: new Agent({ rejectUnauthorized: false, keepAlive: true }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  const { database } = await cosmos.databases.createIfNotExists({ id: config.cosmos.databaseName });
  const { container } = await database.containers.createIfNotExists({
    id: 'naive',
    partitionKey: { paths: ['/id'] },
  });
  const blobs = BlobServiceClient.fromConnectionString(
    'connectionString' in config.storage ? config.storage.connectionString : '',
  ).getContainerClient('naive');
  await blobs.createIfNotExists();
  const limit = pLimit(CONCURRENCY);
  const r = await runPartitions(batchesOf(batchSize), async ({ messages }) => {
    await Promise.all(
      messages.map((m) =>
        limit(async () => {
          const payload = JSON.parse((m.body as Buffer).toString('utf8')) as Record<string, unknown>;
          await container.items.upsert({
            ...payload,
            id: m.deviceId ?? 'unknown',
            lastSequenceNumber: m.sequenceNumber,
          });
          const line = JSON.stringify({
            deviceId: m.deviceId,
            sequenceNumber: m.sequenceNumber,
            body: payload,
          });
          await blobs
            .getBlockBlobClient(`${m.deviceId ?? 'unknown'}/${m.sequenceNumber}.json`)
            .upload(line, Buffer.byteLength(line));
        }),
      ),
    );
    return { cosmos: messages.length, blobs: messages.length };
  });
  return summarize('naive (upsert + blob per event)', batchSize, r);
}

function summarize(
  scenario: string,
  batchSize: number,
  r: { seconds: number; cosmos: number; blobs: number; batches: number },
): Omit<Result, 'peakRssMiB'> {
  return {
    scenario,
    batchSize,
    seconds: r.seconds,
    eventsPerSecond: EVENTS / r.seconds,
    batches: r.batches,
    cosmosWritesPerBatch: r.cosmos / r.batches,
    blobWritesPerBatch: r.blobs / r.batches,
  };
}

/** CPU only: bare JSON.parse of the bytes vs our parse + validate + project (and + archive lines). */
function scenarioCpu(wide: boolean): Record<string, number> {
  const batches = batchesOf(1000, wide).flat();
  const prepared = batches.map(({ partitionId, messages }) => ({
    partitionId,
    ...iotHubBatch(messages, partitionId),
  }));
  const options = DEFAULT_INGEST_OPTIONS;
  let sink = 0;
  const bare = () => {
    for (const b of prepared)
      for (const body of b.bodies)
        sink += Object.keys(JSON.parse((body as Buffer).toString('utf8')) as object).length;
  };
  const ours = (withArchive: boolean) => () => {
    for (const b of prepared) {
      const { partitionId, messages } = readIotHubBatchMetadata(b.triggerMetadata, b.bodies.length);
      const records: TelemetryRecord[] = [];
      b.bodies.forEach((body, i) => {
        const meta = messages[i];
        if (meta) for (const r of parseMessage(body, meta, partitionId, options).records) records.push(r);
      });
      sink += projectBatch(records).size;
      if (withArchive) sink += archiveBlobs(records).length;
    }
  };
  const time = (fn: () => void) => {
    const t = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const runs: Record<'bare' | 'ours' | 'oursArchive', number[]> = { bare: [], ours: [], oursArchive: [] };
  for (let i = 0; i < 3; i++) {
    // warm-up, so that every variant is measured optimized
    bare();
    ours(false)();
    ours(true)();
  }
  for (let i = 0; i < 15; i++) {
    runs.bare.push(time(bare));
    runs.ours.push(time(ours(false)));
    runs.oursArchive.push(time(ours(true)));
  }
  if (sink === 0) throw new Error('benchmark did no work');
  return { bare: median(runs.bare), ours: median(runs.ours), oursArchive: median(runs.oursArchive) };
}

const prefixed = (prefix: string, r: Record<string, number>) =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [`${prefix}:${k}`, v]));

async function child(): Promise<void> {
  const [kind, size] = (process.env.BENCH_SCENARIO ?? '').split(':');
  const result =
    kind === 'cpu'
      ? { ...scenarioCpu(false), ...prefixed('wide', scenarioCpu(true)) }
      : kind === 'ours'
        ? await scenarioOurs(Number(size))
        : await scenarioNaive(Number(size));
  process.send?.({ ...result, peakRssMiB: process.resourceUsage().maxRSS / 1024 });
}

function runChild(scenario: string, env: Record<string, string>): Promise<Record<string, number | string>> {
  return new Promise((resolve, reject) => {
    const proc = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, ...env, BENCH_SCENARIO: scenario },
    });
    let result: Record<string, number | string> | undefined;
    proc.on('message', (m) => (result = m as Record<string, number | string>));
    proc.on('exit', (code) => {
      if (code === 0 && result) resolve(result);
      else reject(new Error(`benchmark scenario ${scenario} exited with ${code}`));
    });
  });
}

const f = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const benchSettings = {
  IotHubEventsConnection: 'Endpoint=sb://localhost/;SharedAccessKeyName=bench;SharedAccessKey=bench',
  IotHubEventHubName: 'bench',
  IngestConsumerGroup: 'bench',
  Ingest__StateWriteConcurrency: String(CONCURRENCY),
};

/** Runs one scenario in a child process against emulators of its own, so no run inherits another's data. */
async function withFreshServices(scenario: string): Promise<Record<string, number | string>> {
  const services = await startLocalServices({ inMemory: true });
  try {
    return await runChild(scenario, { ...localAppSettings(services), ...benchSettings });
  } finally {
    await services.stop();
  }
}

async function parent(): Promise<void> {
  console.log(
    `ingest benchmark: ${f(EVENTS)} events, ${DEVICES} devices, ${PARTITIONS} partitions, Node ${process.version}, ` +
      'fresh local Azurite + cosmosdb-server per scenario\n',
  );
  const rows: Result[] = [];
  for (const size of BATCH_SIZES) {
    for (const kind of ['ours', 'naive'])
      rows.push((await withFreshServices(`${kind}:${size}`)) as unknown as Result);
  }
  console.log('| scenario | batch | events/s | Cosmos writes/batch | blob writes/batch | peak RSS (MiB) |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.scenario} | ${f(r.batchSize)} | ${f(r.eventsPerSecond)} | ${f(r.cosmosWritesPerBatch, 1)} | ${f(r.blobWritesPerBatch, 1)} | ${f(r.peakRssMiB)} |`,
    );
  }
  console.log('');
  for (const size of BATCH_SIZES) {
    const ours = rows.find((r) => r.batchSize === size && r.scenario === 'ingestTelemetry');
    const naive = rows.find((r) => r.batchSize === size && r.scenario !== 'ingestTelemetry');
    if (ours && naive) {
      console.log(
        `batch ${f(size)}: ingestTelemetry is ${f(ours.eventsPerSecond / naive.eventsPerSecond, 1)}x the naive baseline ` +
          `(target >= 10x); ${DEVICES / PARTITIONS} distinct devices per batch`,
      );
    }
  }
  const cpu = (await runChild('cpu', {
    ...benchSettings,
    CosmosDb__accountEndpoint: 'https://127.0.0.1:1/',
    ArchiveStorageConnectionString: 'UseDevelopmentStorage=true',
  })) as Record<string, number>;
  for (const [label, prefix] of [
    ['90-byte bodies (the workload above)', ''],
    ['500-byte bodies (20 readings + nested location)', 'wide:'],
  ] as const) {
    const bare = cpu[`${prefix}bare`] ?? NaN;
    const line = (what: string, seconds: number | undefined) =>
      `  ${what.padEnd(34)} ${f(EVENTS / (seconds ?? NaN)).padStart(9)} events/s = ${f(bare / (seconds ?? NaN), 2)}x bare`;
    console.log(`\nCPU path, ${label}, ${f(EVENTS)} events in batches of 1,000 (median of 15 runs):`);
    console.log(line('bare JSON.parse of the bytes', bare));
    console.log(line('parse + validate + project', cpu[`${prefix}ours`]) + ' (target >= 0.5x)');
    console.log(line('... + archive line serialization', cpu[`${prefix}oursArchive`]));
  }
}

await (process.env.BENCH_SCENARIO ? child() : parent());
