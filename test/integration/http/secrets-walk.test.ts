/**
 * Walks every operation of the OpenAPI document with valid requests, through the embedded local runtime over
 * real HTTP (the composition root as the Functions host loads it), plus the provisioning paths that generate
 * keys (a failure with compensation, a cancel, a bulk run with ?invalid=skip), then sweeps everything the run
 * left (test/support/secrets-sweep.ts): every answer — status line, headers, body —, log line and webhook
 * body, every blob of the storage account, every entity of its tables (the durable instance store, the identity
 * store), every Cosmos document of the test database. It searches for Durable's management URLs (`code=`, the
 * extension's system key), the storage, Cosmos DB and encryption keys of the settings, and every device key
 * handed out or generated (collected from the answers and from the identity store): device keys may appear only
 * in the three operations that hand keys out by design (register, reset-credentials, provisioning results),
 * nowhere else — the identity store and the results window hold them encrypted. Bounded: a few dozen requests,
 * polls of at most 60 s per workflow, one pass over the stores.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { openApiDocument } from '../../../src/http/openapi.js';
import { createCosmosClient } from '../../../src/infra/cosmos/cosmos-client.js';
import { toStorageKey } from '../../../src/infra/storage-keys.js';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { startHookServer, type HookServer } from '../../fixtures/hook-server.js';
import { testSettings } from '../../support/local-env.js';
import { responseProblems } from '../../support/openapi.js';
import { SecretsSweep, identityStoreKeys, type Needle } from '../../support/secrets-sweep.js';

/** The operations whose answers may carry device keys (and nothing else may). */
const KEY_BEARING = new Set(['registerDevice', 'resetDeviceCredentials', 'getProvisioningResults']);
const POLL_LIMIT_MS = 60_000;

interface Answer {
  operationId: string;
  method: string;
  path: string;
  status: number;
  headers: string;
  body: string;
}

/** The secret values of the settings: account keys inside connection strings, and settings named as keys. */
function settingSecrets(settings: Record<string, string>): Needle[] {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(settings)) {
    for (const match of value.matchAll(/(?:AccountKey|SharedAccessKey)=([^;]+)/g)) {
      out.set(match[1] ?? '', `the account key in ${name}`);
    }
    if (/key$/i.test(name)) out.set(value, name);
  }
  // Short values (the local Event Hubs stand-in's 'local') would match ordinary words.
  return [...out]
    .filter(([value]) => value.length >= 16)
    .map(([value, name]) => ({ label: `a key from the settings (${name})`, value, kind: 'secret' }));
}

/** Every key a JSON answer carries: `primaryKey`/`secondaryKey` members, at any depth. */
function deviceKeysIn(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) deviceKeysIn(item, into);
  } else if (typeof value === 'object' && value !== null) {
    for (const [name, member] of Object.entries(value)) {
      if ((name === 'primaryKey' || name === 'secondaryKey') && typeof member === 'string') into.add(member);
      else deviceKeysIn(member, into);
    }
  }
}

describe('every operation of openapi.json, answered without a secret that does not belong there', () => {
  let runtime: Runtime;
  let hooks: HookServer;
  const settings = testSettings({
    Provisioning__RegistryOpsPerMinute: '100000',
    Provisioning__KeysEncryptionKey: randomBytes(32).toString('base64'),
    Jobs__PollIntervalSeconds: '1',
  });
  const config = loadConfig(settings);
  const logs: string[] = [];
  const answers: Answer[] = [];
  const deviceKeys = new Set<string>();

  /** The keys the identity store holds now for the devices `wanted` accepts, added to `deviceKeys`. */
  const keysFromIdentityStore = async (wanted: (deviceId: string) => boolean) => {
    const store = config.provisioning.identityStore;
    if (store.kind !== 'table') throw new Error('The walk runs with the table identity store.');
    const held = await identityStoreKeys(
      store.connectionString,
      store.tableName,
      store.encryptionKey,
      wanted,
    );
    for (const keys of held.values()) for (const key of keys) deviceKeys.add(key);
    return held;
  };

  beforeAll(async () => {
    // A provisioning webhook on loopback: the walk holds some devices' calls there to act meanwhile.
    hooks = await startHookServer();
    settings.Provisioning__Hooks = hooks.url('/hook');
    runtime = await startRuntime({
      settings,
      port: 0,
      log: (message) => logs.push(message),
      functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
    });
  });
  afterAll(async () => {
    await runtime.stop();
    await hooks.close();
  });

  const call = async (operationId: string, method: string, path: string, body?: unknown) => {
    const response = await fetch(`${runtime.origin}/api${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const headers = [...response.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n');
    answers.push({ operationId, method, path, status: response.status, headers, body: text });
    let json: unknown;
    try {
      json = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      json = text;
    }
    if (KEY_BEARING.has(operationId)) deviceKeysIn(json, deviceKeys);
    const type = response.headers.get('content-type') ?? undefined;
    return { status: response.status, json, type, location: response.headers.get('location') };
  };

  /** Polls a GET operation until `done` says so (bounded). */
  const poll = async (operationId: string, path: string, done: (json: unknown) => boolean) => {
    const until = Date.now() + POLL_LIMIT_MS;
    for (;;) {
      const answer = await call(operationId, 'GET', path);
      if (done(answer.json) || Date.now() > until) return answer;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  const finished = (json: unknown) =>
    ['Completed', 'Failed', 'Terminated'].includes((json as { runtimeStatus?: string }).runtimeStatus ?? '');

  it('walks every operation; answers carry no system key, no service key, and device keys only where documented', async () => {
    const dev = `walk-${Date.now().toString(36)}`;
    const problems: string[] = [];
    const check = async (operationId: string, method: string, path: string, body?: unknown) => {
      const answer = await call(operationId, method, path, body);
      problems.push(
        ...responseProblems(operationId, answer.status, answer.json, answer.type).map(
          (p) => `${method} ${path} ${String(answer.status)}: ${p}`,
        ),
      );
      return answer;
    };

    // Devices.
    expect(
      (await check('registerDevice', 'POST', '/devices', { id: dev, metadata: { fleet: 'walk' } })).status,
    ).toBe(201);
    await check('listDevices', 'GET', '/devices?metadata.fleet=walk');
    await check('getDevice', 'GET', `/devices/${dev}`);
    await check('updateDevice', 'PATCH', `/devices/${dev}`, { metadata: { fleet: 'walk', room: 'b1' } });
    await check('deactivateDevice', 'POST', `/devices/${dev}/deactivate`, {});
    await check('activateDevice', 'POST', `/devices/${dev}/activate`, {});
    expect(
      (await check('resetDeviceCredentials', 'POST', `/devices/${dev}/reset-credentials`, {})).status,
    ).toBe(200);
    await check('getDeviceTwin', 'GET', `/devices/${dev}/twin`);
    await check('updateDeviceTwin', 'PATCH', `/devices/${dev}/twin`, { desired: { interval: 60 } });
    await check('getDeviceState', 'GET', `/devices/${dev}/state`);
    // Alarms: none is raised here, so acknowledge and close answer 404; they are walked all the same.
    await check('listAlarms', 'GET', '/alarms');
    await check('acknowledgeAlarm', 'POST', `/alarms/${dev}:no-rule/acknowledge`, {});
    await check('closeAlarm', 'POST', `/alarms/${dev}:no-rule/close`, {});

    // Provisioning workflows, to their results (keys).
    const single = await check('startProvisioning', 'POST', '/provisioning/devices', { id: `${dev}-p` });
    expect(single.status).toBe(202);
    const singleId = (single.json as { id: string }).id;
    expect((await poll('getProvisioning', `/provisioning/${singleId}`, finished)).json).toMatchObject({
      runtimeStatus: 'Completed',
    });
    expect((await check('getProvisioningResults', 'GET', `/provisioning/${singleId}/results`)).status).toBe(
      200,
    );
    const bulk = await check('startBulkProvisioning', 'POST', '/provisioning/bulk', [
      { id: `${dev}-b1` },
      { id: `${dev}-b2` },
    ]);
    expect(bulk.status).toBe(202);
    const bulkId = (bulk.json as { id: string }).id;
    await poll('getProvisioning', `/provisioning/${bulkId}`, finished);
    await check('getProvisioningResults', 'GET', `/provisioning/${bulkId}/results`);
    const skipping = await check('startBulkProvisioning', 'POST', '/provisioning/bulk?invalid=skip', [
      { id: `${dev}-b3` },
      { id: 'not a valid id/' },
    ]);
    expect(skipping.status).toBe(202);
    const skippingId = (skipping.json as { id: string }).id;
    await poll('getProvisioning', `/provisioning/${skippingId}`, finished);
    await check('getProvisioningResults', 'GET', `/provisioning/${skippingId}/results`);

    // A failure with compensation: another writer removes the catalog entry while the hook runs, activation
    // is refused, the workflow undoes its steps. A cancel while the hook runs compensates the same way. Both
    // generated keys that were never handed out: they are read from the identity store meanwhile.
    const catalog = createCosmosClient(config.cosmos)
      .database(config.cosmos.databaseName)
      .container(config.provisioning.devicesContainerName);
    for (const path of ['failure', 'cancel'] as const) {
      const id = `${dev}-${path}`;
      const arrived = hooks.hold(id, POLL_LIMIT_MS);
      const started = await check('startProvisioning', 'POST', '/provisioning/devices', { id });
      const instanceId = (started.json as { id: string }).id;
      await arrived;
      expect([...(await keysFromIdentityStore((d) => d === id)).keys()]).toEqual([id]);
      if (path === 'failure') await catalog.item(toStorageKey(id), toStorageKey(id)).delete();
      else
        expect((await check('cancelProvisioning', 'POST', `/provisioning/${instanceId}/cancel`)).status).toBe(
          202,
        );
      hooks.release(id);
      const end = await poll('getProvisioning', `/provisioning/${instanceId}`, finished);
      expect([path, (end.json as { runtimeStatus?: string }).runtimeStatus]).toEqual([
        path,
        path === 'failure' ? 'Failed' : 'Completed',
      ]);
      await check('getProvisioningResults', 'GET', `/provisioning/${instanceId}/results`);
      expect((await keysFromIdentityStore((d) => d === id)).size).toBe(0);
    }

    // Jobs: one run to its end, one cancelled by POST, one by the DELETE alias.
    const job = await check('createJob', 'POST', '/jobs', {
      type: 'deviceMethod',
      target: { deviceIds: [dev, `${dev}-p`] },
      method: { name: 'reboot', responseTimeoutInSeconds: 5 },
    });
    expect(job.status).toBe(202);
    const jobId = (job.json as { id: string }).id;
    await poll('getJob', `/jobs/${jobId}`, (json) => (json as { status?: string }).status === 'completed');
    await check('getJob', 'GET', `/jobs/${jobId}`);
    await check('listJobs', 'GET', '/jobs');
    const devices = await check('listJobDevices', 'GET', `/jobs/${jobId}/devices?status=failed`);
    expect((devices.json as { items: unknown[] }).items).toHaveLength(2);
    const later = { type: 'twinUpdate', target: { deviceIds: [dev] }, twinPatch: { later: true } };
    const startAt = new Date(Date.now() + 3_600_000).toISOString();
    for (const operationId of ['cancelJobPost', 'cancelJob'] as const) {
      const scheduled = await check('createJob', 'POST', '/jobs', { ...later, startAt });
      const id = (scheduled.json as { id: string; cancelUri: string }).id;
      await poll('getJob', `/jobs/${id}`, (json) => (json as { workflow?: unknown }).workflow !== undefined);
      const cancel =
        operationId === 'cancelJobPost'
          ? await check(operationId, 'POST', `/jobs/${id}/cancel`)
          : await check(operationId, 'DELETE', `/jobs/${id}`);
      expect([operationId, cancel.status]).toEqual([operationId, 202]);
    }

    await check('getHealth', 'GET', '/health');
    await check('openApiDocument', 'GET', '/openapi.json');
    await check('unregisterDevice', 'DELETE', `/devices/${dev}-b2`);

    // Operations added later than this walk still get one request: path parameters filled, an empty body.
    const walked = new Set(answers.map((a) => a.operationId));
    for (const [path, item] of Object.entries(openApiDocument.paths)) {
      for (const [method, op] of Object.entries(item as Record<string, { operationId?: string }>)) {
        const operationId = op.operationId;
        if (method === 'parameters' || operationId === undefined || walked.has(operationId)) continue;
        const filled = path
          .replace('{instanceId}', singleId)
          .replace('{id}', path.startsWith('/jobs') ? jobId : dev);
        await check(
          operationId,
          method.toUpperCase(),
          filled,
          method === 'get' || method === 'delete' ? undefined : {},
        );
      }
    }

    // Every operation of the document was called, none answered 5xx, and each answer is what it documents.
    const documented = Object.values(openApiDocument.paths).flatMap((item) =>
      Object.values(item as Record<string, { operationId?: string }>).flatMap((op) => op.operationId ?? []),
    );
    expect(new Set(answers.map((a) => a.operationId))).toEqual(new Set(documented));
    expect(
      answers.filter((a) => a.status >= 500).map((a) => `${a.method} ${a.path} ${String(a.status)}`),
    ).toEqual([]);
    expect(problems).toEqual([]);

    // The sweep: every key handed out (answers) or still held (identity store), every key of the settings.
    await keysFromIdentityStore((d) => d.startsWith(dev));
    expect(deviceKeys.size).toBeGreaterThanOrEqual(14);
    const secrets = settingSecrets(settings);
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    const keyNeedles = [...deviceKeys].map((value, n): Needle => ({
      label: `device key #${String(n + 1)}`,
      value,
      kind: 'secret',
    }));
    // Markers: things each store must hold, proving the sweep really read it.
    const markers: Needle[] = [
      { label: 'instance', value: singleId, kind: 'marker' },
      { label: 'device', value: `${dev}-p`, kind: 'marker' },
    ];
    const sweep = new SecretsSweep([...secrets, ...keyNeedles, ...markers]);
    const answerSweep = new SecretsSweep([...secrets, ...markers]);
    for (const a of answers) {
      const text = `${String(a.status)}\n${a.headers}\n${a.body}`;
      const where = `${a.method} ${a.path} (${a.operationId})`;
      (KEY_BEARING.has(a.operationId) ? answerSweep : sweep).search('answer', where, text);
    }
    for (const [n, line] of logs.entries()) sweep.search('log', `log line ${String(n + 1)}`, line);
    for (const [n, call] of hooks.calls.entries())
      sweep.search('hook', `webhook call ${String(n + 1)}`, call.raw);
    await sweep.blobs(settings.AzureWebJobsStorage ?? '');
    await sweep.tables(settings.AzureWebJobsStorage ?? '');
    await sweep.cosmos(config.cosmos, config.cosmos.databaseName);
    console.info(`secrets sweep: ${JSON.stringify(sweep.counts)}, ${String(deviceKeys.size)} device keys`);

    expect([...sweep.secretHits(), ...answerSweep.secretHits()]).toEqual([]);
    const instanceStores = sweep.markerStores('instance');
    expect([instanceStores.has('blob'), instanceStores.has('table')]).toEqual([true, true]);
    expect(sweep.markerStores('device').has('cosmos')).toBe(true);
  }, 300_000);
});
