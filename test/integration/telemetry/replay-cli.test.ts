/**
 * `npm run replay` as a user runs it: the compiled script in a child process, settings from the environment.
 * Bad arguments exit 2 with the usage; a dry run prints counts per stream and hour; a run sends every message to
 * the local endpoint and prints records/s.
 */
import { EventHubProducerClient } from '@azure/event-hubs';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import { transpileToTemp } from '../../support/transpile.js';
import { archivedApp, START_MS, type ArchivedApp } from './replay-fixture.js';

let root = '';
let app: ArchivedApp;
let hubs: LocalEventHubs;

function replay(args: string[], env: Record<string, string> = {}) {
  const connection = 'connectionString' in app.config.storage ? app.config.storage.connectionString : '';
  const child = spawn(process.execPath, [join(root, 'dist/tools/replay.js'), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      ArchiveStorageConnectionString: connection,
      RawArchiveContainerName: app.config.storage.rawArchiveContainer,
      ...env,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (code) => {
      resolve({ code, stdout, stderr });
    }),
  );
}

beforeAll(async () => {
  root = transpileToTemp([
    'tools/replay.ts',
    'tools/replay/args.ts',
    'tools/replay/archive-reader.ts',
    'tools/replay/checkpoint.ts',
    'tools/replay/replay-archive.ts',
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
    expect(stdout).toMatch(
      new RegExp(`replay: ${app.records} records, ${app.messages} messages, \\d+ batches, \\d+ records/s`),
    );
    expect(stdout).toContain('dead letters are not replayed');
    expect(stdout).not.toContain('SharedAccessKey'); // the connection string's key is never printed
    const producer = new EventHubProducerClient(connection, 'replay');
    try {
      let events = 0;
      for (const id of await producer.getPartitionIds()) {
        const p = await producer.getPartitionProperties(id);
        if (!p.isEmpty) events += p.lastEnqueuedSequenceNumber - p.beginningSequenceNumber + 1;
      }
      expect(events).toBe(app.messages);
    } finally {
      await producer.close();
    }
  });

  it('names the missing replay hub connection instead of failing obscurely', async () => {
    const { code, stderr } = await replay(RANGE);
    expect(code).toBe(2);
    expect(stderr).toMatch(/pass --connection or --namespace, or set ReplayEventHubConnection/);
  });
});
