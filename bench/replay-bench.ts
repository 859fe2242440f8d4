/**
 * `npm run bench` (replay part, docs/adr/0013): `npm run replay`'s records/s from a 10,000-record raw archive in
 * Azurite to the local Event Hubs endpoint (target ≥ 5,000/s), next to the same read as a dry run (the archive
 * alone) so the cost of sending shows.
 *
 * Workload: 8,400 messages from 200 devices on 4 partitions over three hours, every 5th message a JSON array of
 * two records: 10,080 records, archived in blobs of 250 messages per partition as ingestTelemetry writes them.
 */
import { EventHubProducerClient } from '@azure/event-hubs';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { archiveBlobs } from '../src/telemetry/archive-layout.js';
import { DEFAULT_INGEST_OPTIONS } from '../src/telemetry/ingest-options.js';
import { readIotHubBatchMetadata, UNKNOWN_MESSAGE } from '../src/telemetry/iothub-batch.js';
import { parseMessage, type TelemetryRecord } from '../src/telemetry/records.js';
import { iotHubBatch, type TestMessage } from '../tools/iothub-trigger-metadata.js';
import { startLocalEventHubs } from '../tools/local-eventhubs/server.js';
import { startLocalServices } from '../tools/local-services.js';
import { replayArchive, type ReplaySummary } from '../tools/replay/replay-archive.js';

const MESSAGES = 8_400;
const DEVICES = 200;
const PARTITIONS = 4;
const BLOB_MESSAGES = 250;
const START = Date.UTC(2026, 10, 23, 8, 0, 0);
const RUNS = 3;

/** Per partition, its messages in order (sequence numbers from 0). */
function workload(): Map<string, TestMessage[]> {
  const partitions = new Map<string, TestMessage[]>();
  for (let i = 0; i < MESSAGES; i++) {
    const device = i % DEVICES;
    const partitionId = String(device % PARTITIONS);
    const list = partitions.get(partitionId) ?? [];
    partitions.set(partitionId, list);
    const t = START + Math.floor((i * (3 * 3_600_000 - 1000)) / MESSAGES);
    const reading = {
      ts: new Date(t - 500).toISOString(),
      temperature: 20 + (i % 50) / 10,
      humidity: 40 + (i % 30),
    };
    const body = i % 5 === 0 ? [reading, { _subject: 'diagnostics', rssi: -60 - (i % 30) }] : reading;
    list.push({
      deviceId: `dev-${device}`,
      sequenceNumber: list.length,
      enqueuedTime: new Date(t).toISOString(),
      body: Buffer.from(JSON.stringify(body)),
    });
  }
  return partitions;
}

/** Writes the archive as ingestTelemetry would (same records, same blob names and lines). */
async function writeArchive(container: ContainerClient): Promise<number> {
  await container.createIfNotExists();
  let records = 0;
  for (const [partitionId, messages] of workload()) {
    for (let i = 0; i < messages.length; i += BLOB_MESSAGES) {
      const { bodies, triggerMetadata } = iotHubBatch(messages.slice(i, i + BLOB_MESSAGES), partitionId);
      const meta = readIotHubBatchMetadata(triggerMetadata, bodies.length);
      const batch: TelemetryRecord[] = bodies.flatMap(
        (body, j) =>
          parseMessage(body, meta.messages[j] ?? UNKNOWN_MESSAGE, partitionId, DEFAULT_INGEST_OPTIONS)
            .records,
      );
      records += batch.length;
      for (const blob of archiveBlobs(batch)) {
        const text = `${blob.lines.join('\n')}\n`;
        await container.getBlockBlobClient(blob.name).upload(text, Buffer.byteLength(text));
      }
    }
  }
  return records;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const rate = (s: ReplaySummary, records: number) => Math.round(records / (s.elapsedMs / 1000));
const f = (n: number) => n.toLocaleString('en-US');

/**
 * The endpoint in a child process, as in real use (it lives in the `npm start` process, the replay in its own):
 * resolves with its connection string and a stop function.
 */
async function endpointProcess(): Promise<{ connection: string; stop: () => Promise<void> }> {
  const child = fork(fileURLToPath(import.meta.url), ['--endpoint'], { stdio: 'inherit' });
  const connection = await new Promise<string>((resolve, reject) => {
    child.once('message', (m) => {
      resolve(typeof m === 'string' ? m : JSON.stringify(m));
    });
    child.once('exit', (code) => {
      reject(new Error(`endpoint process exited (${String(code)})`));
    });
  });
  return {
    connection,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => {
          resolve();
        });
        child.kill();
      }),
  };
}

async function main(): Promise<void> {
  const services = await startLocalServices({ inMemory: true });
  const hubs = await endpointProcess();
  try {
    const container = BlobServiceClient.fromConnectionString(
      services.storageConnectionString,
    ).getContainerClient('telemetry-raw-bench');
    const records = await writeArchive(container);
    const range = { container, hub: 'replay', fromMs: START, toMs: START + 3 * 3_600_000 };
    const dry: number[] = [];
    const sent: number[] = [];
    let last: ReplaySummary | undefined;
    for (let run = 0; run < RUNS; run++) {
      dry.push(rate(await replayArchive({ ...range, dryRun: true }), records));
      const producer = new EventHubProducerClient(hubs.connection, 'replay');
      try {
        last = await replayArchive({ ...range, producer });
        if (last.records !== records) throw new Error(`replay sent ${last.records} of ${records} records`);
        sent.push(rate(last, records));
      } finally {
        await producer.close();
      }
    }
    console.log(
      `\nReplay: ${f(records)} records (${f(MESSAGES)} messages, ${DEVICES} devices, ${PARTITIONS} partitions, 3 hours) from Azurite, median of ${RUNS} runs:`,
    );
    console.log('| scenario | records/s | batches |');
    console.log('|---|---:|---:|');
    console.log(`| read + merge only (--dry-run) | ${f(median(dry))} | 0 |`);
    console.log(
      `| replay to the local Event Hubs endpoint | ${f(median(sent))} | ${f(last?.batches ?? 0)} |`,
    );
    console.log(`target: ≥ 5,000 records/s → ${median(sent) >= 5000 ? 'met' : 'NOT met'}`);
  } finally {
    await hubs.stop();
    await services.stop();
  }
}

if (process.argv[2] === '--endpoint') {
  const hubs = await startLocalEventHubs({ port: 0 });
  process.send?.(hubs.connectionString());
  process.once('SIGTERM', () => void hubs.stop().then(() => process.exit(0)));
} else {
  await main();
}
