/**
 * End to end, over HTTP only: `npm start` with a data folder (the built start script in its own process
 * group, as a terminal runs it), stopped the way a user stops it, and started again over the same folder.
 * A crash (SIGKILL of the whole process group) during telemetry and a bulk run loses nothing acknowledged;
 * Ctrl-C (SIGINT to the process group) keeps catalog, state, alarm, jobs, twin and identity.
 */
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { AZURITE_DEV_KEY } from '../../../tools/local-services.js';

interface Run {
  child: ChildProcess;
  output: () => string;
  api: string;
  origin: string;
  blobEndpoint: string;
}

const runs: Run[] = [];
let dataDir = '';

const json = async (response: Response) => (await response.json()) as Record<string, unknown>;
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  output = () => '',
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}.\n${output().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** `npm start` (built) over the data folder, in a process group of its own as a terminal would start it. */
async function start(): Promise<Run> {
  let text = '';
  const child = spawn(
    process.execPath,
    [
      'dist/tools/start-local.js',
      '--embedded',
      '--data-dir',
      dataDir,
      ...[
        '--http-port',
        '--blob-port',
        '--queue-port',
        '--table-port',
        '--cosmos-port',
        '--eventhubs-port',
      ].flatMap((flag) => [flag, '0']),
    ],
    { env: { ...process.env, Alerts__CooldownMinutes: '0' }, stdio: 'pipe', detached: true },
  );
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const output = () => text;
  const api = await until(
    'the API',
    () => {
      if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}:\n${text}`);
      return Promise.resolve(/API base URL\s+(\S+)/.exec(text)?.[1]);
    },
    90_000,
    output,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${text.slice(-3000)}`);
  });
  const run = {
    child,
    output,
    api,
    origin: new URL(api).origin,
    blobEndpoint: /Azurite Blob\s+(\S+)/.exec(text)?.[1] ?? '',
  };
  runs.push(run);
  return run;
}

/** A signal to the whole process group (what a terminal's Ctrl-C does, or a kill -9 of the group). */
async function signalGroup(run: Run, signal: NodeJS.Signals): Promise<void> {
  process.kill(-(run.child.pid ?? 0), signal);
  await until(
    'the exit',
    () => Promise.resolve(run.child.exitCode ?? run.child.signalCode ?? undefined),
    60_000,
  );
}

const keys = new Map<string, string>();
const send = (run: Run, deviceId: string, body: unknown) =>
  post(`${run.origin}/devices/${deviceId}/messages/events`, body, {
    authorization: createSasToken(
      `localhost/devices/${deviceId}`,
      keys.get(deviceId) ?? '',
      Math.floor(Date.now() / 1000) + 3600,
    ),
  });

async function register(run: Run, id: string): Promise<void> {
  const response = await post(`${run.api}/devices`, { id });
  expect(response.status).toBe(201);
  keys.set(id, ((await json(response)).keys as { primaryKey: string }).primaryKey);
}

/** The `seq` of every archived line of a device (the raw archive in Azurite). */
async function archivedSeqs(run: Run, deviceId: string): Promise<Set<number>> {
  const container = new BlobServiceClient(
    run.blobEndpoint,
    new StorageSharedKeyCredential('devstoreaccount1', AZURITE_DEV_KEY),
  ).getContainerClient('telemetry-raw');
  const seqs = new Set<number>();
  if (!(await container.exists())) return seqs;
  for await (const blob of container.listBlobsFlat()) {
    const text = (await container.getBlobClient(blob.name).downloadToBuffer()).toString('utf8');
    for (const line of text.split('\n')) {
      if (!line.includes(`"deviceId":"${deviceId}"`)) continue;
      const seq = /\\?"seq\\?":(\d+)/.exec(line)?.[1];
      if (seq !== undefined) seqs.add(Number(seq));
    }
  }
  return seqs;
}

beforeAll(() => {
  // npm start runs the build first; do the same here.
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'ignore' });
  dataDir = mkdtempSync(join(tmpdir(), 'npm-start-restart-'));
}, 120_000);

const alive = (run: Run) => run.child.exitCode === null && run.child.signalCode === null;

// A test that failed half-way leaves its run holding the data folder: stop it, so the next test can start.
afterEach(async () => {
  for (const run of runs.filter(alive)) {
    // The group may be gone already while its exit is not reported yet.
    await signalGroup(run, 'SIGKILL').catch(() => undefined);
  }
}, 90_000);

afterAll(() => {
  for (const run of runs.filter(alive)) process.kill(-(run.child.pid ?? 0), 'SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start with a data folder, stopped and started again (real processes, HTTP only)', () => {
  it('two restarts within the hour: every message of every run is archived and counted (sequence numbers go on)', async () => {
    let seq = 0;
    let run = await start();
    await register(run, 'seq-1');
    for (let restart = 0; ; restart++) {
      for (let i = 0; i < 5; i++)
        expect((await send(run, 'seq-1', { temperature: 20, seq: seq++ })).status).toBe(204);
      const sent = seq;
      const current = run;
      const seen = async () => {
        const state = await json(await fetch(`${current.api}/devices/seq-1/state`));
        const counted = (state.counts as { messages?: number } | undefined)?.messages ?? 0;
        return { counted, archived: (await archivedSeqs(current, 'seq-1')).size };
      };
      const done = await until(
        `state and archive holding ${sent} messages`,
        async () => {
          const now = await seen();
          return now.counted >= sent && now.archived >= sent ? now : undefined;
        },
        15_000,
        current.output,
      ).catch(seen);
      expect(done).toEqual({ counted: sent, archived: sent });
      if (restart === 2) break;
      await signalGroup(run, 'SIGINT');
      run = await start();
    }
    await signalGroup(run, 'SIGINT');
  }, 300_000);

  it('after a SIGKILL of the process group during telemetry and a bulk run: starts again, every message answered 204 is archived, the bulk run answered 202 completes', async () => {
    const first = await start();
    await register(first, 'crash-1');
    const acknowledged: number[] = [];
    const control = { sending: true };
    const telemetry = (async () => {
      for (let seq = 0; control.sending && seq < 5_000; seq++) {
        const response = await send(first, 'crash-1', { temperature: 20, seq }).catch(() => undefined);
        if (response?.status === 204) acknowledged.push(seq);
        else if (response === undefined) return;
      }
    })();
    await until('some telemetry', () => Promise.resolve(acknowledged.length >= 20 ? true : undefined));
    const bulk = await post(
      `${first.api}/provisioning/bulk`,
      Array.from({ length: 40 }, (_, i) => ({ id: `crash-bulk-${i}` })),
    );
    expect(bulk.status).toBe(202);
    const { statusUri } = (await json(bulk)) as { statusUri: string };
    await new Promise((resolve) => setTimeout(resolve, 300));
    await signalGroup(first, 'SIGKILL');
    control.sending = false;
    await telemetry;
    expect(acknowledged.length).toBeGreaterThan(0);

    const second = await start();
    // The bulk run answered 202 exists and completes.
    const status = await until(
      'the bulk run to complete',
      async () => {
        const response = await fetch(`${second.origin}${statusUri}`);
        expect(response.status).not.toBe(404);
        const body = await json(response);
        return body.runtimeStatus === 'Completed' || body.runtimeStatus === 'Failed' ? body : undefined;
      },
      120_000,
      second.output,
    );
    expect(status).toMatchObject({ runtimeStatus: 'Completed', output: { total: 40, failed: 0 } });
    // Every message answered 204 reaches the archive (those in flight at the crash are delivered again).
    const missing = await until(
      'every acknowledged message in the archive',
      async () => {
        const archived = await archivedSeqs(second, 'crash-1');
        const lost = acknowledged.filter((seq) => !archived.has(seq));
        return lost.length === 0 ? lost : undefined;
      },
      60_000,
      second.output,
    ).catch(async () => {
      const archived = await archivedSeqs(second, 'crash-1');
      return acknowledged.filter((seq) => !archived.has(seq));
    });
    expect(missing, `${missing.length} of ${acknowledged.length} acknowledged messages not archived`).toEqual(
      [],
    );
    // The catalog entry, its identity and its state agree after the restart.
    expect((await fetch(`${second.api}/devices/crash-1`)).status).toBe(200);
    expect((await fetch(`${second.api}/devices/crash-1/state`)).status).toBe(200);
    expect((await send(second, 'crash-1', { temperature: 21, seq: 99_999 })).status).toBe(204);
    await signalGroup(second, 'SIGKILL');
  }, 400_000);

  it('after Ctrl-C (SIGINT to the process group): catalog, state, alarm, jobs, twin and identity are there, and the future job fires', async () => {
    const first = await start();
    await register(first, 'keep-1');
    expect((await send(first, 'keep-1', { temperature: 21, humidity: 40 })).status).toBe(204);
    for (const temperature of [45, 46, 47])
      expect((await send(first, 'keep-1', { temperature })).status).toBe(204);
    const twin = await fetch(`${first.api}/devices/keep-1/twin`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ desired: { telemetryIntervalSeconds: 30 } }),
    });
    expect(twin.status).toBe(200);
    const job = async (extra: Record<string, unknown>, patch: Record<string, unknown>) => {
      const response = await post(`${first.api}/jobs`, {
        type: 'twinUpdate',
        target: { deviceIds: ['keep-1'] },
        twinPatch: patch,
        ...extra,
      });
      expect(response.status).toBe(202);
      return ((await json(response)) as { id: string }).id;
    };
    const repeating = await job(
      { repeat: 'PT1M', startAt: new Date(Date.now() + 3_600_000).toISOString() },
      { r: 1 },
    );
    const future = await job({ startAt: new Date(Date.now() + 25_000).toISOString() }, { firmware: '2.0' });
    await until('the alarm', async () => {
      const items = (await json(await fetch(`${first.api}/alarms?deviceId=keep-1`))).items as unknown[];
      return items.length > 0 ? items : undefined;
    });
    await until('the state', async () => {
      const r = await fetch(`${first.api}/devices/keep-1/state`);
      return r.status === 200 ? true : undefined;
    });
    await signalGroup(first, 'SIGINT');

    const second = await start();
    expect(second.output()).toMatch(/durable: \d+ instances restored/);
    expect((await fetch(`${second.api}/devices/keep-1`)).status).toBe(200);
    const state = await json(await fetch(`${second.api}/devices/keep-1/state`));
    expect(state.telemetry).toMatchObject({ humidity: { value: 40 } });
    const alarms = (await json(await fetch(`${second.api}/alarms?deviceId=keep-1`))).items as {
      rule: string;
    }[];
    expect(alarms.map((a) => a.rule)).toContain('temperature-high');
    expect(await json(await fetch(`${second.api}/devices/keep-1/twin`))).toMatchObject({
      desired: { telemetryIntervalSeconds: 30 },
    });
    const listed = ((await json(await fetch(`${second.api}/jobs`))).items as { id: string }[]).map(
      (j) => j.id,
    );
    expect(listed).toEqual(expect.arrayContaining([repeating, future]));
    for (const id of [repeating, future]) {
      const body = await json(await fetch(`${second.api}/jobs/${id}`));
      expect(body.workflow, id).toMatchObject({ runtimeStatus: 'Running' });
    }
    // The identity: the key from before the restart still authenticates.
    expect((await send(second, 'keep-1', { temperature: 22 })).status).toBe(204);
    // The future job fires after the restart.
    await until(
      'the future job',
      async () => {
        const body = await json(await fetch(`${second.api}/jobs/${future}`));
        return body.status === 'completed' ? body : undefined;
      },
      90_000,
      second.output,
    );
    expect(await json(await fetch(`${second.api}/devices/keep-1/twin`))).toMatchObject({
      desired: { firmware: '2.0' },
    });
    await signalGroup(second, 'SIGINT');
  }, 400_000);

  // Issue 13 item 2 (ordered shutdown, helper L2): SIGTERM, and a second SIGINT during shutdown, are added at merge.
});
