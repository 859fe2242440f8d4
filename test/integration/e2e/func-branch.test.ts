/**
 * The `func start` branch of `npm start`, with a fake `func` on PATH that records its arguments, its
 * environment and the local.settings.json it sees, then exits. Run in a scratch folder (holding only the
 * sample settings), as a fresh clone would.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FREE_PORTS, buildIfStale, startLocalProcess } from '../../../tools/start-local-process.js';

interface Record {
  argv: string[];
  env: { [name: string]: string | undefined };
  localSettings: { Values: { [name: string]: string } };
}

const FAKE_FUNC = `#!/usr/bin/env node
const { readFileSync, writeFileSync } = require('node:fs');
if (process.argv[2] === '--version') { console.log('4.0.0-fake'); process.exit(0); }
writeFileSync(process.env.FAKE_FUNC_RECORD, JSON.stringify({
  argv: process.argv.slice(2),
  env: process.env,
  localSettings: JSON.parse(readFileSync('local.settings.json', 'utf8')),
}));
console.log('fake func: recorded');
`;

let record: Record;
let output = '';
let code: number | string;
let workDir = '';

beforeAll(async () => {
  buildIfStale();
  workDir = mkdtempSync(join(tmpdir(), 'npm-start-func-'));
  const bin = join(workDir, 'bin');
  writeFileSync(join(workDir, 'package.json'), '{"type":"commonjs"}');
  mkdirSync(bin);
  writeFileSync(join(bin, 'func'), FAKE_FUNC);
  chmodSync(join(bin, 'func'), 0o755);
  copyFileSync('local.settings.sample.json', join(workDir, 'local.settings.sample.json'));
  const run = startLocalProcess(
    ['--in-memory', ...FREE_PORTS, '--eventhubs-port', '0', '--gateway-port', '0'],
    {
      cwd: workDir,
      script: resolve('dist/tools/start-local.js'),
      env: {
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        FAKE_FUNC_RECORD: join(workDir, 'record.json'),
      },
    },
  );
  code = await run.exited;
  output = run.output();
  record = JSON.parse(readFileSync(join(workDir, 'record.json'), 'utf8')) as Record;
}, 300_000);

describe('npm start with Core Tools on PATH (fake func)', () => {
  it('runs `func start --port N` on the chosen HTTP port, and stops the services when func exits', () => {
    expect(record.argv.slice(0, 2)).toEqual(['start', '--port']);
    const port = Number(record.argv[2]);
    expect(port).toBeGreaterThan(0);
    expect(output).toContain(`API base URL      http://localhost:${port}/api (func start)`);
    expect(output).toContain('stopped Azurite');
    expect(code).toBe(0);
  });

  it('passes PublicApiBaseUrl for that port, and this run’s emulator endpoints as environment variables', () => {
    const port = record.argv[2] ?? '';
    expect(record.env.PublicApiBaseUrl).toBe(`http://localhost:${port}/api`);
    const blob = /Azurite Blob\s+(\S+)/.exec(output)?.[1] ?? 'missing';
    expect(record.env.AzureWebJobsStorage).toContain(blob);
    expect(record.env.CosmosDb__accountEndpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it("writes a local.settings.json pointing the Event Hub triggers at the local endpoint's default port, no port of this run", () => {
    const values = record.localSettings.Values;
    const local =
      /^Endpoint=sb:\/\/localhost:5672;SharedAccessKeyName=[^;]+;SharedAccessKey=[^;]+;UseDevelopmentEmulator=true$/;
    expect(values.IotHubEventsConnection).toMatch(local);
    expect(values.AnomaliesEventHubConnection).toMatch(local);
    expect(values.ReplayEventHubConnection).toMatch(local);
    expect(values).toMatchObject({ IotHubEventHubName: 'iothub-events', IngestConsumerGroup: 'ingest' });
    const text = JSON.stringify(record.localSettings);
    expect(text).not.toMatch(/[<>]/);
    for (const m of output.matchAll(/(?:Azurite \w+|Cosmos DB)\s+https?:\/\/127\.0\.0\.1:(\d+)/g))
      expect(text).not.toContain(`127.0.0.1:${m[1] ?? ''}`);
  });

  it("passes this run's Event Hubs endpoint (its port) to func, and disables no trigger", () => {
    const port = /Event Hubs\s+amqp:\/\/localhost:(\d+)/.exec(output)?.[1] ?? 'missing';
    expect(port).not.toBe('5672'); // --eventhubs-port 0: a free port
    for (const setting of [
      'IotHubEventsConnection',
      'AnomaliesEventHubConnection',
      'ReplayEventHubConnection',
    ])
      expect(record.env[setting]).toContain(`sb://localhost:${port};`);
    expect(Object.keys(record.localSettings.Values).filter((k) => k.endsWith('.Disabled'))).toEqual([]);
    expect(Object.keys(record.env).filter((k) => k.endsWith('.Disabled'))).toEqual([]);
    expect(output).not.toMatch(/is disabled/);
  });

  it('never prints the Event Hubs key', () => {
    const key =
      /SharedAccessKey=([^;]+)/.exec(record.localSettings.Values.IotHubEventsConnection ?? '')?.[1] ?? '';
    expect(key.length).toBeGreaterThan(0);
    expect(output).not.toContain(key);
  });
});
