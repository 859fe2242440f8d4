/**
 * End to end, over HTTP only: `npm start` with a data folder, stopped the way a terminal stops it (SIGINT to
 * its whole process group), then started again. The shutdown is one ordered sequence whatever signal arrives
 * and however often; Azurite, in its own process group, is stopped once and leaves no half-written file.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import {
  FREE_PORTS,
  buildIfStale,
  startLocalProcess,
  until,
  type StartedProcess,
} from '../../../tools/start-local-process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'npm-start-shutdown-'));
const args = [
  '--embedded',
  '--data-dir',
  dataDir,
  ...FREE_PORTS,
  '--eventhubs-port',
  '0',
  '--shutdown-grace-seconds',
  '5',
];

interface Run extends StartedProcess {
  api: string;
  origin: string;
}

async function start(): Promise<Run> {
  const run = startLocalProcess(args);
  await until(
    'the API',
    () => (run.output().includes('Ctrl-C stops everything') ? true : undefined),
    run.output,
    120_000,
  );
  const api = /API base URL\s+(\S+)/.exec(run.output())?.[1] ?? '';
  return { ...run, api, origin: new URL(api).origin };
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
let key = '';
const auth = () => ({
  authorization: createSasToken('localhost/devices/sd-1', key, Math.floor(Date.now() / 1000) + 600),
});
const sendTelemetry = (run: Run) =>
  post(`${run.origin}/devices/sd-1/messages/events`, { temperature: 20 }, auth());
const durableStatus = (run: Run, id: string) =>
  fetch(`${run.origin}/runtime/webhooks/durabletask/instances/${id}`);
/** What the shutdown printed after it began. */
const shutdownLines = (run: Run) => run.output().slice(run.output().indexOf('shutting down'));
/**
 * A request that stays open: telemetry whose body never finishes arriving (headers and part of the body sent).
 * The shutdown waits for it, within its grace period.
 */
async function openRequest(run: Run): Promise<Socket> {
  const { hostname, port } = new URL(run.origin);
  const socket = connect(Number(port), hostname === 'localhost' ? '127.0.0.1' : hostname);
  socket.on('error', () => undefined); // destroyed by the shutdown
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    'POST /devices/sd-1/messages/events HTTP/1.1\r\nHost: localhost\r\n' +
      `Authorization: ${auth().authorization}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"temp`,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  return socket;
}

const halfWritten = () => readdirSync(join(dataDir, 'azurite')).filter((name) => name.endsWith('~'));

/** Each step's line, in this order. */
const STEPS = [
  'shutting down (SIGINT)',
  'stopped accepting requests',
  'stopping triggers',
  'Event Hubs producers closed',
  'durable instances saved',
  'stopped the Event Hubs endpoint',
  'stopped the Cosmos DB server',
  'stopped Azurite',
  'stopped.',
];

let jobId = '';

beforeAll(() => {
  buildIfStale();
}, 300_000);

describe('npm start stops in order on Ctrl-C and keeps its data (real process group)', () => {
  it('SIGINT to the process group: prints each step in order, exits 0, leaves no half-written Azurite file', async () => {
    const run = await start();
    const created = await post(`${run.api}/devices`, { id: 'sd-1' });
    expect(created.status).toBe(201);
    key = ((await created.json()) as { keys: { primaryKey: string } }).keys.primaryKey;
    const twin = await fetch(`${run.api}/devices/sd-1/twin`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ desired: { mode: 'eco' } }),
    });
    expect(twin.status).toBe(200);
    const job = await post(`${run.api}/jobs`, {
      type: 'twinUpdate',
      target: { deviceIds: ['sd-1'] },
      twinPatch: { telemetryIntervalSeconds: 30 },
      repeat: 'PT1M',
    });
    expect(job.status).toBe(202);
    jobId = ((await job.json()) as { id: string }).id;
    await until(
      'the job instance',
      async () => ((await durableStatus(run, jobId)).ok ? true : undefined),
      run.output,
    );
    expect((await sendTelemetry(run)).status).toBe(204);
    // The invocations were logged the way `func start` logs them, and the routes were listed on start.
    expect(run.output()).toMatch(
      /Executed 'Functions\.registerDevice' \(Succeeded, Id=[\w-]+, Duration=\d+ms\)/,
    );
    expect(run.output()).toContain(`registerDevice: [POST] ${run.api}/devices`);
    expect(run.output()).toMatch(/API ready in \d+ ms/);

    run.signalGroup('SIGINT');
    expect(await run.exited).toBe(0);
    const printed = shutdownLines(run);
    const positions = STEPS.map((step) => printed.indexOf(step));
    expect(
      positions.every((p) => p >= 0),
      printed,
    ).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(printed).toMatch(/in-flight invocations finished/);
    expect(halfWritten()).toEqual([]);
  }, 240_000);

  it('after a restart the identity, the twin and the durable instance are there; SIGTERM stops it the same way', async () => {
    const run = await start();
    expect(run.output()).toMatch(/durable: \d+ instances restored/);
    expect((await sendTelemetry(run)).status).toBe(204); // the identity (Azurite) authenticates the device
    const twin = (await (await fetch(`${run.api}/devices/sd-1/twin`)).json()) as { desired: unknown };
    expect(twin.desired).toMatchObject({ mode: 'eco' });
    const status = (await (await durableStatus(run, jobId)).json()) as { runtimeStatus: string };
    expect(['Pending', 'Running']).toContain(status.runtimeStatus);

    run.signalGroup('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(shutdownLines(run)).toContain('shutting down (SIGTERM)');
    expect(shutdownLines(run)).toContain('stopped Azurite');
    expect(halfWritten()).toEqual([]);
  }, 240_000);

  it('a device long-polling for direct methods is answered 204 at once on Ctrl-C; the shutdown does not wait for it', async () => {
    const run = await start();
    const poll = fetch(`${run.origin}/devices/sd-1/methods/pending?waitSeconds=30`, {
      headers: auth(),
    }).then(
      (response) => response.status,
      (error: unknown) => `failed: ${String(error)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    run.signalGroup('SIGINT');
    expect(await poll).toBe(204);
    expect(await run.exited).toBe(0);
    expect(shutdownLines(run)).toContain('in-flight invocations finished');
    expect(shutdownLines(run)).not.toContain('still running');
  }, 240_000);

  it('a second Ctrl-C during the shutdown says it is still saving; the shutdown still completes and exits 0', async () => {
    const run = await start();
    // A request still open: the shutdown waits for it (bounded).
    const socket = await openRequest(run);
    run.signalGroup('SIGINT');
    await until(
      'the shutdown',
      () => (run.output().includes('shutting down') ? true : undefined),
      run.output,
    );
    run.signalGroup('SIGINT');
    expect(await run.exited).toBe(0);
    socket.destroy();
    const printed = shutdownLines(run);
    expect(printed).toContain('still stopping and saving data');
    expect(printed).toMatch(/0 invocations and 1 open HTTP requests still running after 5000 ms/);
    expect(printed).toContain('stopped Azurite');
    expect(halfWritten()).toEqual([]);
  }, 240_000);

  it('a third Ctrl-C forces the exit (130)', async () => {
    const run = await start();
    const socket = await openRequest(run);
    run.signalGroup('SIGINT');
    await until(
      'the shutdown',
      () => (run.output().includes('shutting down') ? true : undefined),
      run.output,
    );
    run.signalGroup('SIGINT');
    await until('the notice', () => (run.output().includes('still stopping') ? true : undefined), run.output);
    run.signalGroup('SIGINT');
    expect(await run.exited).toBe(130);
    socket.destroy();
    expect(run.output()).toContain('forced exit');
  }, 240_000);
});

/** The pids of a process's children whose command line names Azurite (Linux /proc). */
function azuriteChildren(parent: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && /azurite/i.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8')))
        found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.runIf(process.platform === 'linux')('a kill -9 of npm start alone (not its group)', () => {
  it('--in-memory (no pid file): its Azurite, in a process group of its own, exits when its parent is gone', async () => {
    const run = startLocalProcess(['--embedded', '--in-memory', ...FREE_PORTS, '--eventhubs-port', '0']);
    await until(
      'the API',
      () => (run.output().includes('Ctrl-C stops everything') ? true : undefined),
      run.output,
      120_000,
    );
    const [azurite] = azuriteChildren(run.child.pid ?? -1);
    expect(azurite).toBeTypeOf('number');
    run.child.kill('SIGKILL'); // the runtime alone: the terminal's group signal never reaches Azurite
    await run.exited;
    const pid = azurite ?? -1;
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    const left = alive(pid);
    if (left) process.kill(pid, 'SIGKILL'); // clean up what the old code leaves behind
    expect(left).toBe(false);
  }, 180_000);
});
