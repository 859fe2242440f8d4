/**
 * Provisioning workflows (single and bulk) run by durable-functions' own replay engine through the local
 * durable engine, with the orchestrators and activities exactly as the entry point registers them, and the
 * activities working for real on Azurite and the local Cosmos DB server. Hooks go to a local webhook server.
 */
import { HttpRequest } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import {
  hookFingerprint,
  type ProvisionDeviceInput,
} from '../../../src/provisioning/provision-device-workflow.js';
import { makeWorkflowHandlers } from '../../../src/provisioning/workflow-http-handlers.js';
import type { ApiResponse } from '../../../src/shared/api-request.js';
import type { DurableEngine } from '../../../tools/local-runtime/durable-engine.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { startHookServer } from '../../fixtures/hook-server.js';
import {
  engineFromRegistrations,
  everythingRecorded,
  nonDeterministicEpisodes,
  orchestratorOf,
} from '../../support/durable.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';

const hooks = await startHookServer();
const settings = testSettings({
  IdentityTableName: `wfidentities${Date.now().toString(36)}`,
  // Every hook any test uses; a workflow names its hooks by fingerprint and the activity finds the URL here.
  Provisioning__Hooks: ['/sim', '/billing', '/flaky', '/broken'].map((p) => hooks.url(p)).join(','),
  Provisioning__TwinTemplates: JSON.stringify({
    'thermostat-v2': { telemetryIntervalSeconds: 60, units: { temperature: 'C' } },
    default: { telemetryIntervalSeconds: 300 },
  }),
  Provisioning__RegistryOpsPerMinute: '100',
});
let registrations: Registration[];
let adapters: Adapters;
let engine: DurableEngine;
let handlers: ReturnType<typeof makeWorkflowHandlers>;
const workflows = () => engineWorkflowClient(engine);

beforeAll(async () => {
  registrations = await loadEntryPoint(settings);
  adapters = createAdapters(loadConfig(settings));
  const config = loadConfig(settings);
  handlers = makeWorkflowHandlers({
    identities: adapters.identities,
    work: adapters.work,
    results: adapters.results,
    keysCipher: adapters.keysCipher,
    hooks: [hooks.url('/sim'), hooks.url('/billing')],
    registryOpsPerMinute: config.workflows.registryOpsPerMinute,
    maxMetadataBytes: config.provisioning.maxMetadataBytes,
  });
});
afterAll(() => hooks.close());

const post = (path: string, body: string, contentType = 'application/json') =>
  new HttpRequest({
    url: `http://localhost/api/${path}`,
    method: 'POST',
    headers: { 'content-type': contentType },
    body: { string: body },
  });

const resultsOf = async (instanceId: string) =>
  ((await adapters.results.read(`${instanceId}.jsonl`)) ?? '')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** The results as GET /api/provisioning/{id}/results answers them (keys decrypted). */
const servedResults = async (instanceId: string) =>
  (
    await handlers.getProvisioningResults(
      new HttpRequest({ url: 'http://localhost/api/results', method: 'GET', params: { instanceId } }),
      workflows(),
    )
  ).jsonBody as Record<string, unknown>[];

describe('provisionDevice workflow', () => {
  beforeAll(() => {
    engine = engineFromRegistrations(registrations);
  });

  it('creates identity, catalog entry and twin, calls every hook, activates, and publishes the keys privately', async () => {
    const response = (await handlers.startProvisioning(
      post('provisioning/devices', JSON.stringify({ id: 'wf-ok-1', metadata: { model: 'thermostat-v2' } })),
      workflows(),
    )) as ApiResponse & { jsonBody: { id: string; statusUri: string; resultsUri: string } };
    expect(response.status).toBe(202);
    const instanceId = response.jsonBody.id;
    expect(response.headers?.location).toBe(`/api/provisioning/${instanceId}`);
    expect(response.jsonBody).toMatchObject({
      statusUri: `/api/provisioning/${instanceId}`,
      resultsUri: `/api/provisioning/${instanceId}/results`,
    });
    // Durable's management URLs carry the extension's system key: never in an answer of this API.
    expect(JSON.stringify(response)).not.toMatch(/code=|runtime\/webhooks|statusQueryGetUri/);

    const done = await engine.whenDone(instanceId);
    expect(done.runtimeStatus).toBe('Completed');
    expect(done.output).toEqual({
      deviceId: 'wf-ok-1',
      outcome: 'provisioned',
      results: `${settings.ProvisioningResultsContainerName}/${instanceId}.jsonl`,
    });
    expect(done.customStatus).toEqual({ deviceId: 'wf-ok-1', step: 'done' });

    const identity = await adapters.identities.get('wf-ok-1');
    expect(identity?.status).toBe('enabled');
    expect((await adapters.catalog.get('wf-ok-1'))?.status).toBe('enabled');
    expect((await adapters.twins.get('wf-ok-1'))?.desired).toMatchObject({
      telemetryIntervalSeconds: 60,
      units: { temperature: 'C' },
    });
    const calls = hooks.calls.filter((c) => c.body.deviceId === 'wf-ok-1');
    expect(calls.map((c) => [c.path, c.body.event, c.idempotencyKey])).toEqual([
      ['/sim', 'device.provisioned', `${instanceId}:provisioned:0`],
      ['/billing', 'device.provisioned', `${instanceId}:provisioned:1`],
    ]);

    // The keys: in the identity store and the private results blob (encrypted), nowhere else.
    expect(JSON.stringify(await resultsOf(instanceId))).not.toContain(identity?.keys.primaryKey);
    const [line] = await servedResults(instanceId);
    expect(line).toMatchObject({ deviceId: 'wf-ok-1', outcome: 'provisioned', keys: identity?.keys });
    expect(line?.connectionString).toContain(`SharedAccessKey=${identity?.keys.primaryKey ?? '?'}`);
    const primaryKey = identity?.keys.primaryKey ?? 'missing';
    expect(everythingRecorded(engine, instanceId)).toContain('wf-ok-1');
    expect(everythingRecorded(engine, instanceId)).not.toContain(primaryKey);
    // Hook URLs may carry tokens: history names them by fingerprint only.
    expect(everythingRecorded(engine, instanceId)).not.toContain(hooks.url('/sim'));
    expect(everythingRecorded(engine, instanceId)).toContain(hookFingerprint(hooks.url('/sim')));
    expect(calls.map((c) => c.raw).join('')).not.toContain(primaryKey);
    expect(await adapters.work.read(`keys/${instanceId}.json`)).toBeUndefined();

    expect(
      await nonDeterministicEpisodes(engine, instanceId, orchestratorOf(registrations, 'provisionDevice')),
    ).toEqual([]);
  });

  it('refuses a device that already exists before starting anything (409)', async () => {
    await adapters.identities.create('wf-taken');
    await expect(
      handlers.startProvisioning(
        post('provisioning/devices', JSON.stringify({ id: 'wf-taken' })),
        workflows(),
      ),
    ).rejects.toMatchObject({ code: 'device-already-exists' });
  });

  it('retries a hook that fails twice and then answers, on durable back-off timers', async () => {
    hooks.script('/flaky', [503, 500, 200]);
    const input: ProvisionDeviceInput = {
      deviceId: 'wf-flaky-1',
      metadata: {},
      hooks: [hookFingerprint(hooks.url('/flaky'))],
      requestedAt: '2026-11-23T00:00:00Z',
    };
    const start = engine.now().getTime();
    engine.start('provisionDevice', 'wf-flaky', input);
    const done = await engine.whenDone('wf-flaky');
    expect(done.runtimeStatus).toBe('Completed');
    expect(hooks.calls.filter((c) => c.path === '/flaky')).toHaveLength(3);
    // Back-off 5 s, then 10 s (first retry interval 5 s, coefficient 2) on the engine's clock.
    expect(engine.now().getTime() - start).toBe(15_000);
    // The default twin template applies to a device without a model.
    expect((await adapters.twins.get('wf-flaky-1'))?.desired).toMatchObject({
      telemetryIntervalSeconds: 300,
    });
  });

  it('compensates in reverse order when a hook keeps failing, and ends Failed with the step and reason', async () => {
    hooks.script('/broken', [500]);
    const input: ProvisionDeviceInput = {
      deviceId: 'wf-broken-1',
      metadata: { site: 'north' },
      hooks: [hookFingerprint(hooks.url('/sim')), hookFingerprint(hooks.url('/broken'))],
      requestedAt: '2026-11-23T00:00:00Z',
    };
    engine.start('provisionDevice', 'wf-broken', input);
    const done = await engine.whenDone('wf-broken');
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(
      /Provisioning of 'wf-broken-1' failed at step 'call-hooks': .*HTTP 500.*Compensated: hook 1, registry, identity, outcome\. NOT compensated: hook 2: .*HTTP 500/,
    );
    expect(done.customStatus).toMatchObject({
      step: 'failed',
      failedStep: 'call-hooks',
      compensated: ['hook 1', 'registry', 'identity', 'outcome'],
      problems: [expect.stringMatching(/^hook 2: .*HTTP 500/)],
    });
    // Every attempt the retry policy allows (5), then the cancel notice to the hook that had succeeded.
    const calls = hooks.calls.filter((c) => c.body.deviceId === 'wf-broken-1');
    expect(calls.map((c) => `${c.path} ${String(c.body.event)}`)).toEqual([
      '/sim device.provisioned',
      ...Array<string>(5).fill('/broken device.provisioned'),
      // The failing hook is told too (it may have acted before failing); it keeps failing, 4 attempts.
      ...Array<string>(4).fill('/broken device.provisioning-cancelled'),
      '/sim device.provisioning-cancelled',
    ]);
    expect(await adapters.identities.get('wf-broken-1')).toBeUndefined();
    expect(await adapters.catalog.get('wf-broken-1')).toBeUndefined();
    expect(await resultsOf('wf-broken')).toEqual([
      expect.objectContaining({ deviceId: 'wf-broken-1', outcome: 'failed', failedStep: 'call-hooks' }),
    ]);
    expect(
      await nonDeterministicEpisodes(engine, 'wf-broken', orchestratorOf(registrations, 'provisionDevice')),
    ).toEqual([]);
  });

  it('does not delete a device it did not create: an existing identity fails the workflow without compensation', async () => {
    await adapters.identities.create('wf-someone-elses');
    engine.start('provisionDevice', 'wf-conflict', {
      deviceId: 'wf-someone-elses',
      metadata: {},
      hooks: [],
      requestedAt: '2026-11-23T00:00:00Z',
    } satisfies ProvisionDeviceInput);
    const done = await engine.whenDone('wf-conflict');
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toContain("failed at step 'create-identity'");
    expect(await adapters.identities.get('wf-someone-elses')).toBeDefined();
  });

  it('has idempotent activities: creating the identity twice with the same workflow id succeeds once', async () => {
    const activity = registrations.find((r) => r.metadata.name === 'provisionDeviceCreateIdentity');
    const input = { workflowId: 'wf-twice', deviceId: 'wf-twice-1' };
    await activity?.callback(input, {});
    await activity?.callback(input, {});
    expect((await adapters.identities.get('wf-twice-1'))?.status).toBe('disabled');
  });
});

describe('bulkProvision workflow', () => {
  beforeAll(() => {
    engine = engineFromRegistrations(registrations);
  });

  it('provisions 250 devices from NDJSON in paced chunks of 100, keeping keys out of history', async () => {
    await adapters.identities.create('bulk-7');
    const body = Array.from({ length: 250 }, (_, i) =>
      JSON.stringify({ id: `bulk-${i}`, metadata: { batch: 'b1', index: i } }),
    ).join('\n');
    const start = engine.now().getTime();
    const response = (await handlers.startBulkProvisioning(
      post('provisioning/bulk', body, 'application/x-ndjson'),
      workflows(),
    )) as ApiResponse & { jsonBody: { id: string; total: number; chunks: number } };
    expect(response.status).toBe(202);
    expect(response.jsonBody).toMatchObject({ total: 250, chunks: 3 });
    const instanceId = response.jsonBody.id;

    const done = await engine.whenDone(instanceId);
    expect(done.runtimeStatus).toBe('Completed');
    expect(done.output).toEqual({
      total: 250,
      created: 249,
      alreadyExists: 1,
      invalid: 0,
      failed: 0,
      results: `${settings.ProvisioningResultsContainerName}/${instanceId}.jsonl`,
    });
    // 100 registry operations per minute: one chunk per minute, so the third chunk starts 2 minutes in.
    expect(engine.now().getTime() - start).toBe(120_000);
    for (let chunk = 0; chunk < 3; chunk++) {
      expect(engine.status(`${instanceId}:chunk:${chunk}`)?.runtimeStatus).toBe('Completed');
    }

    const lines = await servedResults(instanceId);
    expect(lines).toHaveLength(250);
    expect(lines.find((l) => l.deviceId === 'bulk-7')).toMatchObject({ outcome: 'already-exists' });
    const created = lines.find((l) => l.deviceId === 'bulk-249') as { keys: { primaryKey: string } };
    expect((await adapters.identities.get('bulk-249'))?.keys).toEqual(created.keys);
    expect((await adapters.catalog.get('bulk-249'))?.metadata).toEqual({ batch: 'b1', index: 249 });
    expect(everythingRecorded(engine, `${instanceId}:chunk:2`)).toContain('bulkProvisionCreateChunk');
    expect(everythingRecorded(engine, instanceId)).not.toContain(created.keys.primaryKey);
    // Work blobs (specs, keys, chunk results) are gone once the results are assembled.
    expect(await adapters.work.read(`keys/${instanceId}/0.json`)).toBeUndefined();
    expect(await adapters.work.read(`requests/${instanceId}/0.json`)).toBeUndefined();

    const parent = orchestratorOf(registrations, 'bulkProvision');
    const child = orchestratorOf(registrations, 'bulkProvisionChunk');
    expect(await nonDeterministicEpisodes(engine, instanceId, parent)).toEqual([]);
    expect(await nonDeterministicEpisodes(engine, `${instanceId}:chunk:1`, child)).toEqual([]);
  });

  it('paces below one chunk per minute: at 50 operations per minute, 100 devices every 2 minutes', async () => {
    for (const chunk of [0, 1]) {
      await adapters.work.write(
        `requests/slow/${chunk}.json`,
        JSON.stringify([{ id: `slow-${chunk}`, metadata: {} }]),
      );
    }
    const start = engine.now().getTime();
    engine.start('bulkProvision', 'slow', {
      total: 2,
      chunks: 2,
      opsPerMinute: 50,
      requestedAt: '2026-11-23T00:00:00Z',
    });
    expect((await engine.whenDone('slow')).output).toMatchObject({ created: 2 });
    expect(engine.now().getTime() - start).toBe(120_000);
  });

  it('re-running a chunk activity returns the same counts and creates nothing twice', async () => {
    const activity = registrations.find((r) => r.metadata.name === 'bulkProvisionCreateChunk');
    await adapters.work.write('requests/rerun/0.json', JSON.stringify([{ id: 'rerun-1', metadata: {} }]));
    const first = await activity?.callback({ runId: 'rerun', index: 0 }, {});
    // As if the first run had crashed after creating identities but before recording its results.
    await adapters.work.deletePrefix('results/rerun/');
    const second = await activity?.callback({ runId: 'rerun', index: 0 }, {});
    expect(first).toEqual({ throttled: false, created: 1, alreadyExists: 0, invalid: 0, failed: 0 });
    expect(second).toEqual(first);
  });

  it.each([
    ['a JSON array with a duplicate id', '[{"id":"d1"},{"id":"d1"}]', 422, /duplicates device 'd1'/],
    ['an unknown field', '[{"id":"d2","keys":{}}]', 422, /is not a known field/],
    ['a broken NDJSON line', '{"id":"d3"}\n{nope', 400, /Line 2/],
    ['an empty body', '   ', 400, /body is required/],
    [
      'more than 10,000 devices',
      JSON.stringify(Array.from({ length: 10_001 }, () => ({}))),
      422,
      /10000 allowed/,
    ],
  ])('refuses %s before starting anything', async (_case, body, status, message) => {
    const before = engine.list().length;
    const error = await handlers
      .startBulkProvisioning(post('provisioning/bulk', body), workflows())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: status === 400 ? 'validation-error' : 'unprocessable-request' });
    expect(
      JSON.stringify(error) + String(error) + JSON.stringify((error as { errors?: unknown }).errors),
    ).toMatch(message);
    expect(engine.list()).toHaveLength(before);
  });
  it('lists every bad entry of a 10,000-device upload in one 422, starting nothing (issue 12, item 14)', async () => {
    const before = engine.list().length;
    const body = JSON.stringify(Array.from({ length: 10_000 }, (_, i) => ({ id: `bad id ${i}` })));
    const error = (await handlers
      .startBulkProvisioning(post('provisioning/bulk', body), workflows())
      .catch((e: unknown) => e)) as { code?: string; errors?: { path: string }[] };
    expect(error.code).toBe('unprocessable-request');
    expect(error.errors?.map((e) => e.path)).toEqual(Array.from({ length: 10_000 }, (_, i) => `${i}.id`));
    expect(engine.list()).toHaveLength(before);
  });

  it('with ?invalid=skip provisions the valid entries and reports each skipped one as invalid (issue 12, item 14)', async () => {
    const body = [
      '{"id":"skip-ok-1"}',
      '{"id":"bad id"}',
      '{"id":"skip-ok-2","metadata":{"site":"a"}}',
      '{"id":"skip-proto","metadata":{"__proto__":{"x":1}}}',
      '{"id":"skip-ok-1"}',
      '"not an object"',
    ].join('\n');
    const response = (await handlers.startBulkProvisioning(
      post('provisioning/bulk?invalid=skip', body, 'application/x-ndjson'),
      workflows(),
    )) as ApiResponse & { jsonBody: { id: string } };
    expect(response.status).toBe(202);
    expect(response.jsonBody).toMatchObject({ total: 6, chunks: 1, invalid: 4 });
    const instanceId = response.jsonBody.id;
    const done = await engine.whenDone(instanceId);
    expect(done.output).toMatchObject({ total: 6, created: 2, alreadyExists: 0, invalid: 4, failed: 0 });
    const lines = await resultsOf(instanceId);
    expect(lines.filter((l) => l.outcome === 'created').map((l) => l.deviceId)).toEqual([
      'skip-ok-1',
      'skip-ok-2',
    ]);
    expect(lines.filter((l) => l.outcome === 'invalid')).toEqual([
      {
        index: 1,
        deviceId: 'bad id',
        outcome: 'invalid',
        error: expect.stringMatching(/^1\.id: /) as string,
      },
      {
        index: 3,
        deviceId: 'skip-proto',
        outcome: 'invalid',
        error: expect.stringMatching(/^3\.metadata\.__proto__: .*reserved/) as string,
      },
      {
        index: 4,
        deviceId: 'skip-ok-1',
        outcome: 'invalid',
        error: expect.stringMatching(/duplicates device 'skip-ok-1'/) as string,
      },
      { index: 5, outcome: 'invalid', error: expect.stringMatching(/^5: /) as string },
    ]);
    expect(await adapters.identities.get('skip-proto')).toBeUndefined();
    expect(await adapters.work.read(`requests/${instanceId}/invalid.jsonl`)).toBeUndefined();
  });

  it.each([
    ['an unknown invalid= mode', 'provisioning/bulk?invalid=ignore', '[{"id":"m1"}]', /invalid/],
    [
      'invalid=skip with no valid device',
      'provisioning/bulk?invalid=skip',
      '[{"id":"bad id"}]',
      /No device is valid/,
    ],
  ])('refuses %s (422) before starting anything', async (_case, path, body, message) => {
    const before = engine.list().length;
    const error = await handlers
      .startBulkProvisioning(post(path, body), workflows())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'unprocessable-request' });
    expect(JSON.stringify((error as { errors?: unknown }).errors) + String(error)).toMatch(message);
    expect(engine.list()).toHaveLength(before);
  });
});
