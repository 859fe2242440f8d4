/**
 * `npm run replay` as a user runs it: the compiled script in a child process, settings from the environment.
 * Bad arguments exit 2 with the usage; a dry run prints counts per stream and hour; a run sends every message to
 * the local endpoint and prints records/s.
 */
import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition } from '@azure/event-hubs';
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import { transpileToTemp } from '../../support/transpile.js';
import { archivedApp, fleet, START_MS, type ArchivedApp } from './replay-fixture.js';

let root = '';
let app: ArchivedApp;
let hubs: LocalEventHubs;

/** Starts the script with the archive settings of `target` in its environment. */
function start(args: string[], target: ArchivedApp = app) {
  const connection =
    'connectionString' in target.config.storage ? target.config.storage.connectionString : '';
  const child = spawn(process.execPath, [join(root, 'dist/tools/replay.js'), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      ArchiveStorageConnectionString: connection,
      RawArchiveContainerName: target.config.storage.rawArchiveContainer,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>(
    (resolve) =>
      child.on('exit', (code, signal) => {
        resolve({ code, signal, stdout, stderr });
      }),
  );
  return { child, exited };
}

const replay = (args: string[], target?: ArchivedApp) => start(args, target).exited;

/** Events in the replay hub now (from the management node). */
async function eventsInHub(connection: string): Promise<number> {
  const producer = new EventHubProducerClient(connection, 'replay');
  try {
    let events = 0;
    for (const id of await producer.getPartitionIds()) {
      const p = await producer.getPartitionProperties(id);
      if (!p.isEmpty) events += p.lastEnqueuedSequenceNumber - p.beginningSequenceNumber + 1;
    }
    return events;
  } finally {
    await producer.close();
  }
}

/** How many times each messageId is in the replay hub (every event read once from the start). */
async function messageIds(connection: string): Promise<Map<string, number>> {
  const expected = await eventsInHub(connection);
  const consumer = new EventHubConsumerClient('$Default', connection, 'replay');
  const ids = new Map<string, number>();
  let read = 0;
  const subscription = consumer.subscribe(
    {
      processEvents: (events) => {
        for (const e of events) ids.set(String(e.messageId), (ids.get(String(e.messageId)) ?? 0) + 1);
        read += events.length;
        return Promise.resolve();
      },
      processError: () => Promise.resolve(),
    },
    { startPosition: earliestEventPosition, maxBatchSize: 500, maxWaitTimeInSeconds: 1 },
  );
  try {
    // Bounded: 600 rounds of 200 ms; the assertions are on counts.
    for (let round = 0; round < 600 && read < expected; round++) await sleep(200);
  } finally {
    await subscription.close();
    await consumer.close();
  }
  expect(read).toBe(expected);
  return ids;
}

beforeAll(async () => {
  root = transpileToTemp([
    'tools/replay.ts',
    'tools/replay/args.ts',
    'tools/replay/archive-reader.ts',
    'tools/replay/checkpoint.ts',
    'tools/replay/replay-archive.ts',
    'tools/replay/settings.ts',
    'tools/atomic-file.ts',
    'src/telemetry/replay-envelope.ts',
    'src/telemetry/records.ts',
    'src/telemetry/iothub-batch.ts',
    'src/telemetry/json-text.ts',
    'src/telemetry/timestamps.ts',
    'src/telemetry/ingest-options.ts',
  ]);
  [app, hubs] = await Promise.all([archivedApp(12, 300), startLocalEventHubs({ port: 0 })]);
}, 120_000);
afterAll(async () => {
  await hubs.stop();
  rmSync(root, { recursive: true, force: true });
});

const RANGE = [
  '--from',
  new Date(START_MS).toISOString(),
  '--to',
  new Date(START_MS + 3 * 3_600_000).toISOString(),
];

describe('npm run replay (the script)', () => {
  it.each([
    [['--from', '2026-11-23'], /--to is required/],
    [['--from', 'soon', '--to', '2026-11-23'], /not an ISO 8601 instant/],
    [[...RANGE, '--frobnicate'], /Unknown option/],
  ])('exits 2 with the usage for %j', async (args, message) => {
    const { code, stderr } = await replay(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr).toContain('usage: npm run replay');
  });

  it('--dry-run prints records per stream and hour and sends nothing', async () => {
    const { code, stdout } = await replay([...RANGE, '--dry-run']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^telemetry\t2026\/11\/23\/08\t\d+$/m);
    expect(stdout).toMatch(/^gps\t2026\/11\/23\/10\t\d+$/m);
    expect(stdout).toContain(`${app.records} records in ${app.messages} messages`);
    expect(stdout).toContain('nothing sent');
  });

  it('sends every message to the replay hub given by --connection, with records/s in its output', async () => {
    const connection = hubs.connectionString();
    const { code, stdout, stderr } = await replay([...RANGE, '--connection', connection]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // It says where it reads and writes before sending (account and hub, never the key).
    expect(stdout).toMatch(
      /^replay: archive http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1\/\S+ → localhost\/replay$/m,
    );
    expect(stdout).toMatch(
      new RegExp(`replay: ${app.records} records, ${app.messages} messages, \\d+ batches, \\d+ records/s`),
    );
    expect(stdout).toContain('dead letters are not replayed');
    expect(stdout).not.toContain('SharedAccessKey'); // the connection string's key is never printed
    expect(await eventsInHub(connection)).toBe(app.messages);
  });

  it('names the missing replay hub connection instead of failing obscurely', async () => {
    const { code, stderr } = await replay(RANGE);
    expect(code).toBe(2);
    expect(stderr).toMatch(/pass --connection or --namespace, or set ReplayEventHubConnection/);
  });
});

describe('npm run replay killed (SIGKILL) mid-way, then run again with its checkpoint', () => {
  it('every message reaches the hub; only batches in flight at the kill are sent twice', async () => {
    const big = await archivedApp(100, 4_000);
    const second = await startLocalEventHubs({ port: 0 });
    try {
      const connection = second.connectionString();
      const checkpoint = join(root, 'killed.ckpt');
      const args = [...RANGE, '--connection', connection, '--checkpoint', checkpoint];
      const { child, exited } = start(args, big);
      // The checkpoint exists once a first batch is acknowledged: kill then, as a crash would.
      for (let i = 0; i < 6_000 && !existsSync(checkpoint) && child.exitCode === null; i++) await sleep(5);
      child.kill('SIGKILL');
      expect((await exited).signal).toBe('SIGKILL');
      const beforeRerun = await eventsInHub(connection);
      expect(beforeRerun).toBeLessThan(big.messages);

      const rerun = await replay(args, big);
      expect(rerun.code).toBe(0);
      const ids = await messageIds(connection);
      expect(ids.size).toBe(big.messages);
      const duplicates = [...ids.values()].reduce((n, c) => n + c - 1, 0);
      // At most 32 devices' batches are in flight; here a device's batch is its messages of one hour.
      const perDeviceHour = new Map<string, number>();
      for (const list of fleet(100, 4_000).values())
        for (const m of list) {
          const key = `${m.deviceId} ${m.enqueuedTime?.slice(0, 13)}`;
          perDeviceHour.set(key, (perDeviceHour.get(key) ?? 0) + 1);
        }
      expect(duplicates).toBeLessThanOrEqual(32 * Math.max(...perDeviceHour.values()));
    } finally {
      await second.stop();
    }
  }, 300_000);
});
