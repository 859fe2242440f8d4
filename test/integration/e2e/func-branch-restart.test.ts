/**
 * A restart of `npm start`'s func branch (data kept on disk): the local rule evaluator beside func resumes from
 * its blob checkpoint, so the readings it evaluated before the stop are not evaluated again and their anomaly is
 * not sent twice. The proof needs no waiting: a device's anomalies share a partition of the anomalies hub, so
 * any repeat of the first would be stored before the anomaly of the readings sent after the restart.
 */
import { EventHubConsumerClient, earliestEventPosition, type ReceivedEventData } from '@azure/event-hubs';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import {
  FREE_PORTS,
  buildIfStale,
  startLocalProcess,
  until,
  type StartedProcess,
} from '../../../tools/start-local-process.js';
import { appSettingsOf, fakeFuncWorkDir, type FuncRecord } from './fake-func.js';

/** A port free now (the checkpoints of a local endpoint are kept per port, so both runs need the same one). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address() as AddressInfo;
  await new Promise((done) => probe.close(done));
  return port;
}

const bodyOf = (event: ReceivedEventData) =>
  JSON.parse((event.body as Buffer).toString('utf8')) as Record<string, unknown>;

/** One run of npm start with the fake func; resolves once the gateway is up, with func's settings. */
async function startRun(workDir: string, recordFile: string, env: Record<string, string>, hubsPort: number) {
  rmSync(recordFile, { force: true });
  const run = startLocalProcess(
    [...FREE_PORTS, '--data-dir', join(workDir, 'data'), '--eventhubs-port', String(hubsPort)],
    { cwd: workDir, script: resolve('dist/tools/start-local.js'), env: { ...env } },
  );
  await until('fake func to start', () => (existsSync(recordFile) ? true : undefined), run.output, 120_000);
  const gateway = await until(
    'the gateway in the banner',
    () =>
      /device gateway\s+(http:\/\/localhost:\d+)\/devices\/\{id\}\/messages\/events/.exec(run.output())?.[1],
    run.output,
  );
  const record = JSON.parse(readFileSync(recordFile, 'utf8')) as FuncRecord;
  return { run, gateway, settings: appSettingsOf(record) };
}

/** Stops a run as a service manager would (SIGTERM to npm start) and expects a clean exit. */
async function stopRun(run: StartedProcess) {
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(0);
}

/** The device's anomaly records on the anomalies hub ($Default, from the start) until `last` picks one. */
async function anomaliesUntil(
  connectionString: string,
  deviceId: string,
  last: (record: Record<string, unknown>) => boolean,
  output: () => string,
): Promise<Record<string, unknown>[]> {
  const consumer = new EventHubConsumerClient('$Default', connectionString, 'anomalies');
  const records: Record<string, unknown>[] = [];
  let done = false;
  const subscription = consumer.subscribe(
    {
      processEvents: async (events) => {
        for (const event of events) {
          const record = bodyOf(event);
          if (record.deviceId !== deviceId || done) continue;
          records.push(record);
          done = last(record);
        }
        return Promise.resolve();
      },
      processError: async () => Promise.resolve(),
    },
    { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1, skipParsingBodyAsJson: true },
  );
  try {
    await until('the anomaly', () => (done ? true : undefined), output, 30_000);
    return records;
  } finally {
    await subscription.close();
    await consumer.close();
  }
}

describe('npm start with Core Tools on PATH, restarted with its data kept', () => {
  it('does not send an anomaly again for readings the rule evaluator checkpointed before the stop', async () => {
    buildIfStale();
    const { workDir, recordFile, env } = fakeFuncWorkDir();
    const hubsPort = await freePort();
    const deviceId = 'restart-hot';
    const hot = async (gateway: string, key: string, hostName: string, startMs: number, values: number[]) => {
      for (const [i, temperature] of values.entries()) {
        const response = await fetch(`${gateway}/devices/${deviceId}/messages/events`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: createSasToken(
              `${hostName}/devices/${deviceId}`,
              key,
              Math.floor(Date.now() / 1000) + 600,
            ),
          },
          body: JSON.stringify({ temperature, ts: new Date(startMs + i * 1000).toISOString() }),
        });
        expect(response.status).toBe(204);
      }
    };

    const first = await startRun(workDir, recordFile, env, hubsPort);
    const config = loadConfig(first.settings);
    const identity = await createAdapters(config).identities.create(deviceId);
    const key = identity.keys.primaryKey;
    const hostName = config.provisioning.hostName;
    const start = Date.now();
    await hot(first.gateway, key, hostName, start, [41, 42, 43]);
    const before = await anomaliesUntil(
      first.settings.IotHubEventsConnection ?? '',
      deviceId,
      (record) => record.value === 43,
      first.run.output,
    );
    expect(before).toHaveLength(1);
    await stopRun(first.run);

    const second = await startRun(workDir, recordFile, env, hubsPort);
    try {
      // Ten minutes later: a window of its own (the rule's window is five minutes), a distinct maximum.
      await hot(second.gateway, key, hostName, start + 10 * 60_000, [45, 46, 47]);
      const all = await anomaliesUntil(
        second.settings.IotHubEventsConnection ?? '',
        deviceId,
        (record) => record.value === 47,
        second.run.output,
      );
      expect(all.map((record) => record.value)).toEqual([43, 47]);
    } finally {
      await stopRun(second.run);
    }
  }, 300_000);
});
