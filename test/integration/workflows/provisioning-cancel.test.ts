/**
 * Cancelling a provisioning workflow (issue 12, item 6): POST /api/provisioning/{id}/cancel raises an event the
 * orchestration handles with the same compensation as a failure, so nothing half-provisioned stays behind and
 * the same id can be provisioned again; a bulk run starts no further chunk and reports the rest cancelled. Run
 * through durable-functions' replay engine (manual clock) on Azurite and the local Cosmos DB server.
 */
import { randomUUID } from 'node:crypto';
import { HttpRequest } from '@azure/functions';
import type { OrchestrationContext } from 'durable-functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import { makeWorkflowHandlers } from '../../../src/provisioning/workflow-http-handlers.js';
import type { ApiResponse } from '../../../src/shared/api-request.js';
import {
  DurableEngine as DurableEngineClass,
  type DurableEngine,
} from '../../../tools/local-runtime/durable-engine.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { startHookServer } from '../../fixtures/hook-server.js';
import {
  engineFromRegistrations,
  nonDeterministicEpisodes,
  orchestrator,
  orchestratorOf,
} from '../../support/durable.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';
import { responseProblems } from '../../support/openapi.js';

const hooks = await startHookServer();
const settings = testSettings({
  IdentityTableName: `cancelidentities${Date.now().toString(36)}`,
  Provisioning__Hooks: hooks.url('/sim'),
  Provisioning__RegistryOpsPerMinute: '100',
});
let registrations: Registration[];
let adapters: Adapters;
let handlers: ReturnType<typeof makeWorkflowHandlers>;

beforeAll(async () => {
  registrations = await loadEntryPoint(settings);
  adapters = createAdapters(loadConfig(settings));
  handlers = makeWorkflowHandlers({
    identities: adapters.identities,
    work: adapters.work,
    results: adapters.results,
    keysCipher: adapters.keysCipher,
    hooks: [hooks.url('/sim')],
    registryOpsPerMinute: 100,
    maxMetadataBytes: 8192,
  });
});
afterAll(() => hooks.close());

const request = (path: string, body?: string, params: Record<string, string> = {}) =>
  new HttpRequest({
    url: `http://localhost/api/${path}`,
    method: 'POST',
    params,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: { string: body } }),
  });
const cancel = (engine: DurableEngine, instanceId: string) =>
  handlers.cancelProvisioning(
    request(`provisioning/${instanceId}/cancel`, undefined, { instanceId }),
    engineWorkflowClient(engine),
  );
type Accepted = ApiResponse & { jsonBody: { id: string; statusUri: string; cancelUri: string } };

describe('cancelling provisionDevice', () => {
  it('compensates like a failure (hook told, entry and identity removed), and the id can be provisioned again', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    // The hook fails once: the workflow then waits on its retry timer, and the cancel arrives meanwhile.
    hooks.script('/sim', [500, 200, 200]);
    const started = (await handlers.startProvisioning(
      request('provisioning/devices', JSON.stringify({ id: 'cancel-1', metadata: { site: 's' } })),
      engineWorkflowClient(engine),
    )) as Accepted;
    const instanceId = started.jsonBody.id;
    expect(started.jsonBody.cancelUri).toBe(`/api/provisioning/${instanceId}/cancel`);
    expect(responseProblems('startProvisioning', 202, started.jsonBody)).toEqual([]);
    await engine.idle();
    expect(engine.status(instanceId)?.customStatus).toMatchObject({ step: 'call-hooks' });
    expect(await adapters.catalog.get('cancel-1')).toBeDefined();

    const response = await cancel(engine, instanceId);
    expect(response.status).toBe(202);
    expect(response.headers).toMatchObject({ location: `/api/provisioning/${instanceId}` });
    expect(response.jsonBody).toEqual({
      id: instanceId,
      statusUri: `/api/provisioning/${instanceId}`,
      status: 'cancelling',
    });
    expect(responseProblems('cancelProvisioning', 202, response.jsonBody)).toEqual([]);
    // The hook's retry (already under way) finishes; the workflow stops before activation and compensates.
    engine.advance(5_000);
    const done = await engine.whenDone(instanceId);
    expect(done.runtimeStatus).toBe('Completed');
    expect(done.output).toMatchObject({
      deviceId: 'cancel-1',
      outcome: 'cancelled',
      cancelledAtStep: 'call-hooks',
      compensated: ['hook 1', 'registry', 'identity', 'outcome'],
      problems: [],
    });
    expect(done.customStatus).toMatchObject({ step: 'cancelled' });
    expect(await adapters.identities.get('cancel-1')).toBeUndefined();
    expect(await adapters.catalog.get('cancel-1')).toBeUndefined();
    const events = hooks.calls.filter((c) => c.body.deviceId === 'cancel-1').map((c) => c.body.event);
    expect(events.at(-1)).toBe('device.provisioning-cancelled');
    const line = JSON.parse((await adapters.results.read(`${instanceId}.jsonl`)) ?? '{}') as object;
    expect(line).toMatchObject({ deviceId: 'cancel-1', outcome: 'cancelled', failedStep: 'call-hooks' });
    expect(
      await nonDeterministicEpisodes(engine, instanceId, orchestratorOf(registrations, 'provisionDevice')),
    ).toEqual([]);

    // Finished: a second cancel is 409. And nothing is left that would make a new provisioning answer 409.
    await expect(cancel(engine, instanceId)).rejects.toMatchObject({ code: 'invalid-transition' });
    const again = (await handlers.startProvisioning(
      request('provisioning/devices', JSON.stringify({ id: 'cancel-1' })),
      engineWorkflowClient(engine),
    )) as Accepted;
    expect((await engine.whenDone(again.jsonBody.id)).output).toMatchObject({ outcome: 'provisioned' });
  });

  it('lets a step that is running when the cancel arrives finish, then undoes it too', async () => {
    const holder: { engine?: DurableEngine } = {};
    const engine = engineFromRegistrations(registrations, 'virtual', (name, input) => {
      // The cancel arrives while the device catalog write runs.
      if (name === 'provisionDeviceWriteRegistry') {
        holder.engine?.raiseEvent((input as { workflowId: string }).workflowId, 'cancel', {});
      }
    });
    holder.engine = engine;
    engine.start('provisionDevice', 'cancel-mid', {
      deviceId: 'cancel-mid-1',
      metadata: {},
      hooks: [],
      requestedAt: '2026-11-23T00:00:00Z',
    });
    const done = await engine.whenDone('cancel-mid');
    expect(done.output).toMatchObject({
      outcome: 'cancelled',
      cancelledAtStep: 'write-registry',
      compensated: ['registry', 'identity', 'outcome'],
    });
    expect(await adapters.catalog.get('cancel-mid-1')).toBeUndefined();
    expect(await adapters.identities.get('cancel-mid-1')).toBeUndefined();
    expect(
      await nonDeterministicEpisodes(engine, 'cancel-mid', orchestratorOf(registrations, 'provisionDevice')),
    ).toEqual([]);
  });

  it('GET of a failed run gives the reason alone, not the extension\'s "Orchestrator function … failed:" text', async () => {
    const failing = orchestrator(function* (context: OrchestrationContext) {
      yield context.df.createTimer(context.df.currentUtcDateTime);
      throw new Error('hook https://hooks.example/sim refused the device');
    });
    const engine = new DurableEngineClass({
      orchestrators: new Map([['provisionDevice', failing]]),
      activities: new Map(),
      clock: 'virtual',
    });
    const instanceId = `provision-${randomUUID()}`;
    engine.start('provisionDevice', instanceId, {});
    await engine.whenDone(instanceId);
    expect(String(engine.status(instanceId)?.output)).toMatch(
      /^Orchestrator function 'provisionDevice' failed: /,
    );
    const answer = (await handlers.getProvisioning(
      new HttpRequest({
        url: `http://localhost/api/provisioning/${instanceId}`,
        method: 'GET',
        params: { instanceId },
      }),
      engineWorkflowClient(engine),
    )) as ApiResponse & { jsonBody: { runtimeStatus: string; output: unknown } };
    expect(answer.jsonBody).toMatchObject({
      runtimeStatus: 'Failed',
      output: 'hook https://hooks.example/sim refused the device',
    });
  });

  it('answers 404 for an unknown workflow', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    await expect(cancel(engine, `provision-${randomUUID()}`)).rejects.toMatchObject({
      code: 'workflow-not-found',
    });
    await expect(cancel(engine, 'scheduled-job-1')).rejects.toMatchObject({ code: 'workflow-not-found' });
  });
});

describe('cancelling bulkProvision', () => {
  it('starts no further chunk, keeps what the finished chunks made, and reports the rest cancelled', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const body = Array.from({ length: 250 }, (_, i) => JSON.stringify({ id: `cancel-bulk-${i}` })).join('\n');
    const started = (await handlers.startBulkProvisioning(
      new HttpRequest({
        url: 'http://localhost/api/provisioning/bulk',
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: { string: body },
      }),
      engineWorkflowClient(engine),
    )) as Accepted;
    const instanceId = started.jsonBody.id;
    expect(started.jsonBody.cancelUri).toBe(`/api/provisioning/${instanceId}/cancel`);
    expect(responseProblems('startBulkProvisioning', 202, started.jsonBody)).toEqual([]);
    // 100 operations per minute: the first chunk runs, then the run waits a minute for the next.
    await engine.idle();
    expect(engine.status(`${instanceId}:chunk:0`)?.runtimeStatus).toBe('Completed');
    expect((await cancel(engine, instanceId)).status).toBe(202);
    const done = await engine.whenDone(instanceId);
    expect(done.output).toMatchObject({ status: 'cancelled', total: 250, created: 100, cancelled: 150 });
    expect(engine.status(`${instanceId}:chunk:1`)).toBeUndefined();
    expect(await adapters.identities.get('cancel-bulk-100')).toBeUndefined();
    expect(await adapters.identities.get('cancel-bulk-99')).toBeDefined();
    const lines = ((await adapters.results.read(`${instanceId}.jsonl`)) ?? '')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { outcome: string });
    expect(lines).toHaveLength(250);
    expect(lines.filter((l) => l.outcome === 'created')).toHaveLength(100);
    expect(lines.filter((l) => l.outcome === 'cancelled')).toHaveLength(150);
    await expect(cancel(engine, instanceId)).rejects.toMatchObject({ code: 'invalid-transition' });
  });
  it('a cancel accepted after every chunk has started changes nothing, and output and status say so', async () => {
    const held: { arrived?: () => void; release?: () => void } = {};
    const arrived = new Promise<void>((resolve) => (held.arrived = resolve));
    const gate = new Promise<void>((resolve) => (held.release = resolve));
    // The only chunk's activity is held while the cancel is accepted: every chunk has started by then.
    const engine = engineFromRegistrations(registrations, 'manual', (name) => {
      if (name !== 'bulkProvisionCreateChunk') return undefined;
      held.arrived?.();
      return gate;
    });
    const body = Array.from({ length: 30 }, (_, i) => JSON.stringify({ id: `late-cancel-${i}` })).join('\n');
    const started = (await handlers.startBulkProvisioning(
      new HttpRequest({
        url: 'http://localhost/api/provisioning/bulk',
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: { string: body },
      }),
      engineWorkflowClient(engine),
    )) as Accepted;
    const instanceId = started.jsonBody.id;
    await arrived;
    expect(engine.status(`${instanceId}:chunk:0`)?.runtimeStatus).toBe('Running');
    expect((await cancel(engine, instanceId)).status).toBe(202);
    held.release?.();

    const done = await engine.whenDone(instanceId);
    expect(done.runtimeStatus).toBe('Completed');
    const late = {
      cancelRequested: true,
      cancelNote: expect.stringMatching(/after every chunk had started; no device was cancelled/) as unknown,
    };
    expect(done.output).toMatchObject({ total: 30, created: 30, failed: 0, ...late });
    expect(done.output).not.toHaveProperty('status');
    expect(done.customStatus).toMatchObject({ step: 'done', chunksDone: 1, chunks: 1, created: 30, ...late });
    // The chunk, running its activity when the forwarded cancel came, finished normally.
    expect(engine.status(`${instanceId}:chunk:0`)?.output).toMatchObject({ created: 30 });
    expect(await adapters.identities.get('late-cancel-29')).toBeDefined();
    expect(await adapters.catalog.get('late-cancel-29')).toBeDefined();
  });
});
