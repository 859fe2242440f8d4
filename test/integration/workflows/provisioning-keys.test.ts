/**
 * Device keys of the provisioning workflows (issue 12, items 2 and 8): encrypted at rest, served for a bounded
 * window (or once, on request), removed from every work blob on every terminal path, and never left with an
 * identity nobody has the keys of when a bulk run loses its inputs. Real activities on Azurite and the local
 * Cosmos DB server, run by the local durable engine.
 */
import { HttpRequest } from '@azure/functions';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type AppConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import { BlobPrivateFiles } from '../../../src/infra/blob/blob-private-files.js';
import { createBlobService } from '../../../src/infra/blob/blob-service.js';
import { HttpProvisioningHooks } from '../../../src/infra/webhooks/http-provisioning-hooks.js';
import { makeProvisionDeviceActivities } from '../../../src/provisioning/provision-device-activities.js';
import {
  hookFingerprint,
  type ProvisionDeviceInput,
} from '../../../src/provisioning/provision-device-workflow.js';
import { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import { makePurgeExpiredDeviceKeys } from '../../../src/provisioning/result-keys.js';
import { makeWorkflowHandlers } from '../../../src/provisioning/workflow-http-handlers.js';
import type { ApiResponse } from '../../../src/shared/api-request.js';
import { DurableEngine, type ActivityHandler } from '../../../tools/local-runtime/durable-engine.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { engineFromRegistrations, everythingRecorded, replaySchemaUnderTest } from '../../support/durable.js';
import { byTrigger, loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';

const settings = testSettings({
  IdentityTableName: `keysidentities${Date.now().toString(36)}`,
  Provisioning__RegistryOpsPerMinute: '100',
});
const HOUR = 3_600_000;
let registrations: Registration[];
let config: AppConfig;
let adapters: Adapters;

beforeAll(async () => {
  registrations = await loadEntryPoint(settings);
  config = loadConfig(settings);
  adapters = createAdapters(config);
});

/** The workflow handlers as the entry point builds them, with the clock at `now`. */
const handlersAt = (now: () => Date) =>
  makeWorkflowHandlers({
    identities: adapters.identities,
    work: adapters.work,
    results: adapters.results,
    keysCipher: adapters.keysCipher,
    hooks: [],
    registryOpsPerMinute: 100,
    maxMetadataBytes: 8192,
    now,
  });

const post = (path: string, body: string) =>
  new HttpRequest({
    url: `http://localhost/api/${path}`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: { string: body },
  });

type Line = Record<string, unknown> & { deviceId: string; keys?: unknown; connectionString?: string };

/** GET /api/provisioning/{id}/results through the handler, as a client sees it. */
async function download(
  engine: DurableEngine,
  instanceId: string,
  query = '',
  hoursLater = 0,
): Promise<Line[]> {
  const request = new HttpRequest({
    url: `http://localhost/api/provisioning/${instanceId}/results${query}`,
    method: 'GET',
    params: { instanceId },
  });
  const response = await handlersAt(() => new Date(Date.now() + hoursLater * HOUR)).getProvisioningResults(
    request,
    engineWorkflowClient(engine),
  );
  expect(response.status).toBe(200);
  expect(response.headers).toMatchObject({ 'cache-control': 'no-store' });
  return response.jsonBody as Line[];
}

const stored = async (instanceId: string) => (await adapters.results.read(`${instanceId}.jsonl`)) ?? '';

async function provisionOne(engine: DurableEngine, deviceId: string): Promise<string> {
  const response = (await handlersAt(() => new Date()).startProvisioning(
    post('provisioning/devices', JSON.stringify({ id: deviceId })),
    engineWorkflowClient(engine),
  )) as ApiResponse & { jsonBody: { id: string } };
  const instanceId = response.jsonBody.id;
  expect((await engine.whenDone(instanceId)).runtimeStatus).toBe('Completed');
  return instanceId;
}

describe('device keys at rest and their window', () => {
  let engine: DurableEngine;
  beforeAll(() => {
    engine = engineFromRegistrations(registrations);
  });

  it('encrypts the keys in the work and results blobs; the results route decrypts them with their expiry', async () => {
    const before = Date.now();
    const instanceId = await provisionOne(engine, 'keys-at-rest-1');
    const identity = await adapters.identities.get('keys-at-rest-1');
    const primaryKey = identity?.keys.primaryKey ?? 'missing';

    const text = await stored(instanceId);
    expect(text).not.toContain(primaryKey);
    expect(text).not.toContain('SharedAccessKey');
    expect(JSON.parse(text)).toMatchObject({ deviceId: 'keys-at-rest-1', outcome: 'provisioned' });

    const [line] = await download(engine, instanceId);
    expect(line).toMatchObject({ deviceId: 'keys-at-rest-1', outcome: 'provisioned', keys: identity?.keys });
    expect(line?.connectionString).toContain(`SharedAccessKey=${primaryKey}`);
    const expiry = Date.parse(String(line?.keysExpireAt));
    expect(expiry).toBeGreaterThanOrEqual(before + 24 * HOUR);
    expect(expiry).toBeLessThanOrEqual(Date.now() + 24 * HOUR);
    expect(everythingRecorded(engine, instanceId)).not.toContain(primaryKey);
  });

  it('keeps the generated keys of a running workflow encrypted in its work blob', async () => {
    const createIdentity = registrations.find((r) => r.metadata.name === 'provisionDeviceCreateIdentity');
    await createIdentity?.callback({ workflowId: 'keys-work-blob', deviceId: 'keys-work-blob-1' }, {});
    const identity = await adapters.identities.get('keys-work-blob-1');
    const blob = await adapters.work.read('keys/keys-work-blob.json');
    expect(blob).toMatch(/^v1\./);
    expect(blob).not.toContain(identity?.keys.primaryKey ?? 'missing');
    // A second attempt of the activity recognises its own identity through the decrypted blob.
    await createIdentity?.callback({ workflowId: 'keys-work-blob', deviceId: 'keys-work-blob-1' }, {});
  });

  it('answers the outcomes without keys after the window, and removes the keys from the blob', async () => {
    const instanceId = await provisionOne(engine, 'keys-expire-1');
    expect(await download(engine, instanceId, '', 23)).toEqual([
      expect.objectContaining({ outcome: 'provisioned', keys: expect.any(Object) as unknown }),
    ]);
    const [late] = await download(engine, instanceId, '', 25);
    expect(late).toMatchObject({ deviceId: 'keys-expire-1', outcome: 'provisioned', keys: 'expired' });
    expect(late).not.toHaveProperty('connectionString');
    // Expiry removes the material: the sealed keys are gone from the blob, not only hidden.
    expect(JSON.parse(await stored(instanceId))).toEqual({
      deviceId: 'keys-expire-1',
      outcome: 'provisioned',
      keys: 'expired',
      keysExpireAt: late?.keysExpireAt,
    });
    expect(await download(engine, instanceId)).toEqual([late]);
  });

  it('with consume=true hands the keys out once and removes them', async () => {
    const instanceId = await provisionOne(engine, 'keys-consume-1');
    const identity = await adapters.identities.get('keys-consume-1');
    const [first] = await download(engine, instanceId, '?consume=true');
    expect(first?.keys).toEqual(identity?.keys);
    expect(await stored(instanceId)).not.toContain('sealed');
    const [second] = await download(engine, instanceId, '?consume=true');
    expect(second).toMatchObject({ deviceId: 'keys-consume-1', outcome: 'provisioned', keys: 'consumed' });
    expect(second).not.toHaveProperty('connectionString');
  });

  it('hands the keys to exactly one of 10 concurrent consume=true downloads (the rewrite is conditional)', async () => {
    const instanceId = await provisionOne(engine, 'keys-consume-race');
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => download(engine, instanceId, '?consume=true')),
    );
    const withKeys = answers.filter(([line]) => typeof line?.keys === 'object');
    expect(withKeys).toHaveLength(1);
    expect(answers.filter(([line]) => line?.keys === 'consumed')).toHaveLength(9);
    expect(await stored(instanceId)).not.toContain('sealed');
  });

  it('refuses a consume value other than true or false (422)', async () => {
    const request = new HttpRequest({
      url: 'http://localhost/api/provisioning/x/results?consume=yes',
      method: 'GET',
      params: { instanceId: 'provision-00000000-0000-0000-0000-000000000000' },
    });
    await expect(
      handlersAt(() => new Date()).getProvisioningResults(request, engineWorkflowClient(engine)),
    ).rejects.toMatchObject({ code: 'unprocessable-request' });
  });

  it('has a timer that drops expired keys from every results blob nobody reads', async () => {
    const instanceId = await provisionOne(engine, 'keys-timer-1');
    const log: string[] = [];
    const purge = makePurgeExpiredDeviceKeys({
      results: adapters.results,
      now: () => new Date(Date.now() + 25 * HOUR),
    });
    expect(await purge(undefined, { log: (m: unknown) => log.push(String(m)) })).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(await stored(instanceId))).toMatchObject({ keys: 'expired' });
    expect(await stored(instanceId)).not.toContain('sealed');
    // Nothing left to drop: a second run rewrites nothing.
    expect(await purge(undefined, { log: () => undefined })).toBe(0);
  });
});

describe('work files are removed on every terminal path', () => {
  /** An engine whose publish step writes to a container name storage refuses (400): publishing always fails. */
  function engineWithBrokenResults(): DurableEngine {
    const service = new ProvisioningService({
      identities: adapters.identities,
      twins: adapters.twins,
      catalog: adapters.catalog,
      stateStore: adapters.stateStore,
      orphans: adapters.orphans,
      hostName: config.provisioning.hostName,
      maxMetadataBytes: config.provisioning.maxMetadataBytes,
    });
    const broken = makeProvisionDeviceActivities({
      identities: adapters.identities,
      catalog: adapters.catalog,
      twins: adapters.twins,
      service,
      hooks: new HttpProvisioningHooks(),
      hookUrls: [],
      work: adapters.work,
      results: new BlobPrivateFiles(createBlobService(config.storage), 'Not_A_Valid_Container', true),
      resultsContainer: 'Not_A_Valid_Container',
      cipher: adapters.keysCipher,
      keysRetentionMs: config.workflows.keysRetentionMs,
      twinTemplates: {},
      hostName: config.provisioning.hostName,
    });
    const activities = new Map(byTrigger(registrations, 'activityTrigger') as Map<string, ActivityHandler>);
    for (const [name, handler] of Object.entries(broken)) activities.set(name, handler as ActivityHandler);
    return new DurableEngine({
      replaySchema: replaySchemaUnderTest(),
      orchestrators: byTrigger(registrations, 'orchestrationTrigger'),
      activities,
      clock: 'virtual',
    });
  }

  const input = (deviceId: string, hooks: string[] = []): ProvisionDeviceInput => ({
    deviceId,
    metadata: {},
    hooks,
    requestedAt: '2026-12-01T00:00:00Z',
  });

  it('a failed publish of a provisioned device: no keys blob left, and the answer says how to get keys', async () => {
    const engine = engineWithBrokenResults();
    engine.start('provisionDevice', 'keys-publish-fails', input('keys-publish-fails-1'));
    const done = await engine.whenDone('keys-publish-fails');
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(/provisioned and active, but its outcome could not be published/);
    expect(String(done.output)).toContain('reset-credentials');
    expect((await adapters.identities.get('keys-publish-fails-1'))?.status).toBe('enabled');
    expect(await adapters.work.read('keys/keys-publish-fails.json')).toBeUndefined();
  });

  it('a compensated failure whose outcome cannot be published: no keys blob left', async () => {
    const engine = engineWithBrokenResults();
    // A hook that is no longer configured fails the workflow after the identity exists.
    engine.start(
      'provisionDevice',
      'keys-compensated',
      input('keys-compensated-1', [hookFingerprint('gone')]),
    );
    const done = await engine.whenDone('keys-compensated');
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(/failed at step 'call-hooks'.*NOT compensated: .*; outcome: /);
    expect(await adapters.identities.get('keys-compensated-1')).toBeUndefined();
    expect(await adapters.work.read('keys/keys-compensated.json')).toBeUndefined();
  });

  it('a compensated failure that publishes its outcome: no keys blob left', async () => {
    const engine = engineFromRegistrations(registrations);
    engine.start('provisionDevice', 'keys-failed', input('keys-failed-1', [hookFingerprint('gone')]));
    expect((await engine.whenDone('keys-failed')).runtimeStatus).toBe('Failed');
    expect(JSON.parse(await stored('keys-failed'))).toMatchObject({ outcome: 'failed' });
    expect(await adapters.work.read('keys/keys-failed.json')).toBeUndefined();
  });
});

describe('a bulk run that lost its work blobs', () => {
  const activity = (name: string) => {
    const registration = registrations.find((r) => r.metadata.name === name);
    if (!registration) throw new Error(`no activity ${name}`);
    return (input: unknown) => registration.callback(input, {});
  };

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

  it('fails with the reason when chunk request blobs are gone before their chunks run; every identity it created is reported with its keys', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const body = JSON.stringify(Array.from({ length: 250 }, (_, i) => ({ id: `lost-run-${i}` })));
    const response = (await handlersAt(() => new Date()).startBulkProvisioning(
      post('provisioning/bulk', body),
      engineWorkflowClient(engine),
    )) as ApiResponse & { jsonBody: { id: string; chunks: number } };
    const instanceId = response.jsonBody.id;
    expect(response.jsonBody.chunks).toBe(3);
    // 100 registry operations per minute: chunk 0 runs, then the run waits a minute for the next wave.
    await engine.idle();
    expect(engine.status(`${instanceId}:chunk:0`)?.runtimeStatus).toBe('Completed');
    // The crash: the request blobs of the chunks still to run are lost.
    await adapters.work.deletePrefix(`requests/${instanceId}/1.json`);
    await adapters.work.deletePrefix(`requests/${instanceId}/2.json`);

    const done = await runToEnd(engine, instanceId);
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(
      /Bulk run '.*' failed: chunk 1 has no request blob \(the run's work files were lost\)/,
    );
    expect(done.customStatus).toMatchObject({
      step: 'failed',
      reason: expect.stringContaining('chunk 1') as unknown,
    });

    // Identities of this run: exactly those reported with their keys (chunk 0); none of the lost chunks.
    const lines = await download(engine, instanceId);
    expect(lines).toHaveLength(100);
    for (const line of lines) {
      expect(line.outcome).toBe('created');
      expect((await adapters.identities.get(line.deviceId))?.keys).toEqual(line.keys);
    }
    for (const i of [100, 175, 249]) expect(await adapters.identities.get(`lost-run-${i}`)).toBeUndefined();
    // No work file of the run is left, keys included.
    for (const prefix of ['keys', 'requests', 'results']) {
      expect(await adapters.work.list(`${prefix}/${instanceId}/`)).toEqual([]);
    }
  });

  it('removes the identities a chunk created when its request blob is lost before its results were recorded', async () => {
    const createChunk = activity('bulkProvisionCreateChunk');
    await adapters.work.write(
      'requests/lost-late/0.json',
      JSON.stringify([
        { id: 'lost-late-1', metadata: {} },
        { id: 'lost-late-2', metadata: {} },
      ]),
    );
    expect(await createChunk({ runId: 'lost-late', index: 0 })).toMatchObject({ created: 2 });
    const identity = await adapters.identities.get('lost-late-1');
    const keysBlob = await adapters.work.read('keys/lost-late/0.json');
    expect(keysBlob).toMatch(/^v1\./);
    expect(keysBlob).not.toContain(identity?.keys.primaryKey ?? 'missing');
    expect(await adapters.work.read('results/lost-late/0.jsonl')).not.toContain(
      identity?.keys.primaryKey ?? 'missing',
    );
    // The crash lost the request and the chunk's results, not the identities.
    await adapters.work.deletePrefix('requests/lost-late/');
    await adapters.work.deletePrefix('results/lost-late/');

    expect(await createChunk({ runId: 'lost-late', index: 0 })).toMatchObject({
      created: 0,
      lost: expect.stringMatching(
        /chunk 0 has no request blob.*the 2 identities it had created were removed/,
      ) as unknown,
    });
    expect(await adapters.identities.get('lost-late-1')).toBeUndefined();
    expect(await adapters.identities.get('lost-late-2')).toBeUndefined();
    expect(await adapters.catalog.get('lost-late-1')).toBeUndefined();
  });

  it('never salvages a chunk without a request blob as an empty chunk', async () => {
    expect(
      await activity('bulkProvisionSalvageChunk')({ runId: 'lost-salvage', index: 0, reason: 'gave up' }),
    ).toMatchObject({ created: 0, lost: expect.stringContaining('chunk 0 has no request blob') as unknown });
  });
});
