/**
 * `npm run bench` (Event Hubs part): events/s through the local Event Hubs endpoint (tools/local-eventhubs, ADR
 * 0012) with the real `@azure/event-hubs` SDK, in memory and persisted to a folder (fsync before accept), next to
 * the in-process `LocalHub` it replaces.
 *
 * Workload: EVENTS events with a 200-byte JSON body, 4 partitions; PRODUCERS producers send `createBatch` batches
 * of up to BATCH events to the partitions round robin; then one EventHubConsumerClient reads every partition from
 * the start (maxBatchSize 500) until all arrived. Bounded: a phase that takes longer than GIVE_UP_MS is reported
 * as failed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition } from '@azure/event-hubs';
import { startLocalEventHubs, type LocalEventHubs } from '../tools/local-eventhubs/server.js';

const EVENTS = 50_000;
const PRODUCERS = 4;
const BATCH = 500;
const PARTITIONS = 4;
const GIVE_UP_MS = 120_000;
const BODY = { deviceId: 'bench-device-0001', ts: '2026-11-23T08:00:00.000Z', pad: 'x'.repeat(120) };

/** Recorded by the lead on 85d62cf (the in-process LocalHub, 100,000 events of 200 B, 2 shared cores). */
const LOCAL_HUB_BASELINE = { memory: 109_881, durable: 27_679 };

const f = (n: number): string => Math.round(n).toLocaleString('en-US');

async function send(hubs: LocalEventHubs): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    const producer = new EventHubProducerClient(hubs.connectionString(), 'iothub-events');
    try {
      for (let round = w; ; round += PRODUCERS) {
        const count = Math.min(BATCH, EVENTS - next);
        if (count <= 0) return;
        next += count;
        const batch = await producer.createBatch({ partitionId: String(round % PARTITIONS) });
        for (let i = 0; i < count; i++) {
          if (!batch.tryAdd({ body: BODY })) throw new Error('batch full before BATCH events');
        }
        await producer.sendBatch(batch);
        if (performance.now() - started > GIVE_UP_MS) throw new Error('send gave up');
      }
    } finally {
      await producer.close();
    }
  };
  await Promise.all(Array.from({ length: PRODUCERS }, (_, w) => worker(w)));
  return performance.now() - started;
}

async function receive(hubs: LocalEventHubs): Promise<number> {
  const consumer = new EventHubConsumerClient('$Default', hubs.connectionString(), 'iothub-events');
  const started = performance.now();
  let received = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`receive gave up after ${f(received)} events`));
      }, GIVE_UP_MS);
      consumer.subscribe(
        {
          processEvents: (events) => {
            received += events.length;
            if (received >= EVENTS) {
              clearTimeout(timer);
              resolve();
            }
            return Promise.resolve();
          },
          processError: () => Promise.resolve(),
        },
        { startPosition: earliestEventPosition, maxBatchSize: 500, maxWaitTimeInSeconds: 1 },
      );
    });
  } finally {
    await consumer.close();
  }
  if (received !== EVENTS) throw new Error(`received ${received} events, sent ${EVENTS}`);
  return performance.now() - started;
}

async function scenario(label: string, folder: string | undefined): Promise<string> {
  const hubs = await startLocalEventHubs({ port: 0, ...(folder ? { folder } : {}) });
  try {
    const sendMs = await send(hubs);
    const receiveMs = await receive(hubs);
    const baseline = folder ? LOCAL_HUB_BASELINE.durable : LOCAL_HUB_BASELINE.memory;
    return `| ${label} | ${f((EVENTS / sendMs) * 1000)} | ${f((EVENTS / receiveMs) * 1000)} | ${f(baseline)} |`;
  } catch (error) {
    return `| ${label} | failed: ${error instanceof Error ? error.message : String(error)} | | |`;
  } finally {
    await hubs.stop();
  }
}

async function main(): Promise<void> {
  console.log(
    `local Event Hubs endpoint benchmark: ${f(EVENTS)} events of ~200 B, ${PARTITIONS} partitions, ` +
      `${PRODUCERS} producers, batches of ${BATCH}, @azure/event-hubs over AMQP on loopback, Node ${process.version}\n`,
  );
  const rows = [await scenario('in memory', undefined)];
  const folder = mkdtempSync(join(tmpdir(), 'eventhubs-bench-'));
  try {
    rows.push(await scenario('data folder (fsync before accept)', folder));
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
  console.log(
    '| storage | SDK send events/s | SDK receive events/s | in-process LocalHub send+receive events/s |',
  );
  console.log('|---|---:|---:|---:|');
  for (const row of rows) console.log(row);
  console.log(
    '\nThe LocalHub column is the baseline recorded on 85d62cf (in-process arrays, no wire, no SDK); the endpoint ' +
      'adds AMQP framing, encoding and the SDK on both sides.',
  );
}

await main();
