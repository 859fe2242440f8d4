/**
 * Walks every operation of the OpenAPI document with valid requests, through the embedded local runtime over
 * real HTTP (the composition root as the Functions host loads it), and searches every answer — status line,
 * headers, body — and the log for secrets: Durable's management URLs (`code=`, the extension's system key),
 * the storage, Cosmos DB and encryption keys of the settings, and device keys outside the three operations
 * that hand keys out by design (register, reset-credentials, provisioning results). Bounded: a few dozen
 * requests and polls of at most 60 s per workflow.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../../src/http/openapi.js';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { testSettings } from '../../support/local-env.js';
import { responseProblems } from '../../support/openapi.js';

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
function settingSecrets(settings: Record<string, string>): string[] {
  const out = new Set<string>();
  for (const [name, value] of Object.entries(settings)) {
    for (const match of value.matchAll(/(?:AccountKey|SharedAccessKey)=([^;]+)/g)) out.add(match[1] ?? '');
    if (/key$/i.test(name)) out.add(value);
  }
  // Short values (the local Event Hubs stand-in's 'local') would match ordinary words.
  return [...out].filter((s) => s.length >= 16);
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
  const settings = testSettings({
    Provisioning__RegistryOpsPerMinute: '100000',
    Jobs__PollIntervalSeconds: '1',
  });
  const logs: string[] = [];
  const answers: Answer[] = [];
  const deviceKeys = new Set<string>();

  beforeAll(async () => {
    runtime = await startRuntime({
      settings,
      port: 0,
      log: (message) => logs.push(message),
      functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
    });
  });
  afterAll(async () => {
    await runtime.stop();
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

    // The search.
    expect(deviceKeys.size).toBeGreaterThanOrEqual(8);
    const secrets = settingSecrets(settings);
    expect(secrets.length).toBeGreaterThanOrEqual(2);
    const hits: string[] = [];
    for (const a of answers) {
      const text = `${String(a.status)}\n${a.headers}\n${a.body}`;
      const where = `${a.method} ${a.path} (${a.operationId})`;
      if (/code=|runtime\/webhooks|statusQueryGetUri|sendEventPostUri/i.test(text))
        hits.push(`${where}: Durable URL`);
      for (const secret of secrets) if (text.includes(secret)) hits.push(`${where}: a key from the settings`);
      if (!KEY_BEARING.has(a.operationId)) {
        for (const key of deviceKeys) if (text.includes(key)) hits.push(`${where}: a device key`);
      }
    }
    for (const line of logs) {
      if (/code=/i.test(line)) hits.push(`log: ${line.slice(0, 120)}`);
      for (const secret of [...secrets, ...deviceKeys]) {
        if (line.includes(secret)) hits.push(`log: a secret in ${line.slice(0, 60)}`);
      }
    }
    expect(hits).toEqual([]);
  }, 240_000);
});
