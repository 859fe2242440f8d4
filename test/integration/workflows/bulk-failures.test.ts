/**
 * Bulk runs that fail (issue 12, items 2, 6 and 8, after review): whatever ends the run — lost work blobs, an
 * unreadable keys blob, a lost list of invalid entries — the run is Failed with its reason, a results blob says
 * per device what happened, the identities it created are either reported with their keys or removed, and no
 * work blob is left. Real activities on Azurite and the local Cosmos DB server, run by the local durable engine.
 */
import { HttpRequest } from '@azure/functions';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import { makeWorkflowHandlers } from '../../../src/provisioning/workflow-http-handlers.js';
import type { ApiResponse } from '../../../src/shared/api-request.js';
import type { DurableEngine } from '../../../tools/local-runtime/durable-engine.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { engineFromRegistrations } from '../../support/durable.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';

const settings = testSettings({
  IdentityTableName: `bulkfail${Date.now().toString(36)}`,
  Provisioning__RegistryOpsPerMinute: '100',
});
let registrations: Registration[];
let adapters: Adapters;

beforeAll(async () => {
  registrations = await loadEntryPoint(settings);
  adapters = createAdapters(loadConfig(settings));
});

const handlers = () =>
  makeWorkflowHandlers({
    identities: adapters.identities,
    work: adapters.work,
    results: adapters.results,
    keysCipher: adapters.keysCipher,
    hooks: [],
    registryOpsPerMinute: 100,
    maxMetadataBytes: 8192,
  });

const activity = (name: string) => {
  const registration = registrations.find((r) => r.metadata.name === name);
  if (!registration) throw new Error(`no activity ${name}`);
  return (input: unknown) => registration.callback(input, {});
};

type Line = Record<string, unknown> & { deviceId: string; keys?: unknown };

async function startBulk(engine: DurableEngine, prefix: string, count: number): Promise<string> {
  const body = JSON.stringify(Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${i}` })));
  const response = (await handlers().startBulkProvisioning(
    new HttpRequest({
      url: 'http://localhost/api/provisioning/bulk',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: { string: body },
    }),
    engineWorkflowClient(engine),
  )) as ApiResponse & { jsonBody: { id: string } };
  expect(response.status).toBe(202);
  return response.jsonBody.id;
}

async function download(engine: DurableEngine, instanceId: string): Promise<Line[]> {
  const response = await handlers().getProvisioningResults(
    new HttpRequest({
      url: `http://localhost/api/provisioning/${instanceId}/results`,
      method: 'GET',
      params: { instanceId },
    }),
    engineWorkflowClient(engine),
  );
  expect(response.status).toBe(200);
  return response.jsonBody as Line[];
}

/** Moves a manual clock a minute at a time until the instance ends (bounded: 100 minutes). */
async function runToEnd(engine: DurableEngine, instanceId: string) {
  for (let minute = 0; minute < 100; minute++) {
    await engine.idle();
    const status = engine.status(instanceId)?.runtimeStatus;
    if (status === 'Completed' || status === 'Failed' || status === 'Terminated') break;
    engine.advance(60_000);
  }
  return engine.whenDone(instanceId);
}

async function expectNoWorkBlobs(runId: string) {
  for (const prefix of ['keys', 'requests', 'results'])
    expect(await adapters.work.list(`${prefix}/${runId}/`)).toEqual([]);
}

/** Every identity and catalog entry of `ids` that still exists. */
async function leftOf(ids: readonly string[]) {
  const left: string[] = [];
  for (const id of ids) {
    if (await adapters.identities.get(id)) left.push(`identity ${id}`);
    if (await adapters.catalog.get(id)) left.push(`entry ${id}`);
  }
  return left;
}

describe('a bulk run that lost every work blob (requests, keys and results)', () => {
  it('fails, and no identity of the run is left (found by their catalog entries)', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const runId = await startBulk(engine, 'lost-all', 150);
    await engine.idle();
    expect(engine.status(`${runId}:chunk:0`)?.runtimeStatus).toBe('Completed');
    expect(await adapters.identities.get('lost-all-0')).toBeDefined();
    // The crash: the whole work container of the run is gone, keys of chunk 0 included.
    for (const prefix of ['requests', 'keys', 'results'])
      await adapters.work.deletePrefix(`${prefix}/${runId}/`);

    const done = await runToEnd(engine, runId);
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(/chunk 1 has no request blob/);
    expect(String(done.output)).toMatch(/chunk 0 has no request blob/);
    const ids = Array.from({ length: 150 }, (_, i) => `lost-all-${i}`);
    expect(await leftOf(ids)).toEqual([]);
    const lines = await download(engine, runId);
    expect(lines.filter((line) => line.outcome === 'created')).toEqual([]);
    await expectNoWorkBlobs(runId);
  });

  it('assembly alone removes the identities whose keys and request blob are gone', async () => {
    await adapters.work.write(
      'requests/lost-keys/0.json',
      JSON.stringify([
        { id: 'lost-keys-1', metadata: {} },
        { id: 'lost-keys-2', metadata: {} },
      ]),
    );
    expect(await activity('bulkProvisionCreateChunk')({ runId: 'lost-keys', index: 0 })).toMatchObject({
      created: 2,
    });
    for (const prefix of ['requests', 'keys', 'results'])
      await adapters.work.deletePrefix(`${prefix}/lost-keys/`);
    const assembled = (await activity('bulkProvisionAssembleResults')({ runId: 'lost-keys', chunks: 1 })) as {
      lost?: string[];
    };
    expect(assembled.lost?.join('; ')).toMatch(/chunk 0 has no request blob.*2 identities.*removed/);
    expect(await leftOf(['lost-keys-1', 'lost-keys-2'])).toEqual([]);
  });
});

describe('other failures of a bulk run', () => {
  it('a chunk whose keys blob does not decrypt: its devices are reported failed, the others created, no work blob left', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const runId = await startBulk(engine, 'bad-keys', 250);
    await engine.idle();
    expect(engine.status(`${runId}:chunk:0`)?.runtimeStatus).toBe('Completed');
    // Chunk 1's keys blob exists before the chunk runs, and does not decrypt.
    await adapters.work.write(`keys/${runId}/1.json`, 'v1.garbage');

    const done = await runToEnd(engine, runId);
    expect(done.runtimeStatus).toBe('Completed');
    expect(done.output).toMatchObject({ created: 150, failed: 100 });
    const lines = await download(engine, runId);
    expect(lines).toHaveLength(250);
    const created = lines.filter((line) => line.outcome === 'created');
    expect(created).toHaveLength(150);
    for (const line of created)
      expect((await adapters.identities.get(line.deviceId))?.keys).toEqual(line.keys);
    const failed = lines.filter((line) => line.outcome === 'failed');
    expect(failed.map((line) => line.deviceId)).toContain('bad-keys-100');
    expect(String(failed[0]?.error)).toMatch(/chunk 1 failed: .*keys blob could not be read/);
    expect(await leftOf(['bad-keys-100', 'bad-keys-199'])).toEqual([]);
    await expectNoWorkBlobs(runId);
  });

  it('a chunk sub-orchestration that fails: no further wave, results and clean-up, the run fails', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const runId = await startBulk(engine, 'bad-chunk', 250);
    await engine.idle();
    expect(engine.status(`${runId}:chunk:0`)?.runtimeStatus).toBe('Completed');
    // Neither the chunk nor its salvage can read chunk 1's request: the sub-orchestration fails.
    await adapters.work.write(`requests/${runId}/1.json`, 'not json');

    const done = await runToEnd(engine, runId);
    expect(engine.status(`${runId}:chunk:1`)?.runtimeStatus).toBe('Failed');
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(/chunk 1 failed: .*chunk 1 could not be salvaged/);
    // No further wave after the failure: chunk 2 never started.
    expect(engine.status(`${runId}:chunk:2`)).toBeUndefined();
    const lines = await download(engine, runId);
    const created = lines.filter((line) => line.outcome === 'created');
    expect(created).toHaveLength(100);
    for (const line of created)
      expect((await adapters.identities.get(line.deviceId))?.keys).toEqual(line.keys);
    const notReached = lines.filter((line) => line.outcome === 'failed');
    expect(notReached).toHaveLength(50);
    expect(String(notReached[0]?.error)).toMatch(/the run stopped: chunk 1 failed/);
    expect(await leftOf(['bad-chunk-100', 'bad-chunk-249'])).toEqual([]);
    await expectNoWorkBlobs(runId);
  });

  it('a lost list of invalid entries: results are still written, work blobs removed, the loss reported', async () => {
    await adapters.work.write(
      'requests/lost-invalid/0.json',
      JSON.stringify([{ id: 'lost-invalid-1', metadata: {} }]),
    );
    expect(await activity('bulkProvisionCreateChunk')({ runId: 'lost-invalid', index: 0 })).toMatchObject({
      created: 1,
    });
    const assemble = activity('bulkProvisionAssembleResults');
    const input = { runId: 'lost-invalid', chunks: 1, invalid: 3 };
    const first = (await assemble(input)) as { lost?: string[] };
    expect(first.lost?.join('; ')).toMatch(/list of its 3 invalid entries was lost/);
    const text = (await adapters.results.read('lost-invalid.jsonl')) ?? '';
    expect(text).toContain('"deviceId":"lost-invalid-1"');
    await expectNoWorkBlobs('lost-invalid');
    // A retried assembly (the first answer was lost) still reports the loss: never a Completed failed run.
    expect(((await assemble(input)) as { lost?: string[] }).lost).toEqual(first.lost);
  });
});

describe('provisionDevice compensation without its keys blob', () => {
  it('does not delete an identity it cannot prove is its own: skipped and reported', async () => {
    await adapters.identities.create('not-provably-ours');
    const reply = await activity('provisionDeviceDeleteIdentity')({
      deviceId: 'not-provably-ours',
      workflowId: 'provision-without-keys-blob',
    });
    expect(reply).toMatchObject({
      kind: 'refused',
      reason: expect.stringMatching(/not provably/) as unknown,
    });
    expect(await adapters.identities.get('not-provably-ours')).toBeDefined();
  });
});
