import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { withProblemDetails } from '../../../src/http/problem.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { TableIdentityStore } from '../../../src/infra/tables/table-identity-store.js';
import { makeProvisioningHandlers } from '../../../src/provisioning/http-handlers.js';
import { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { UnprocessableRequestError } from '../../../src/shared/errors.js';
import { testConfig } from '../../support/local-env.js';
import { responseProblems } from '../../support/openapi.js';

/**
 * A rejected request changes nothing (issue 12, item 7), concurrent credential resets hand out only working keys
 * (item 9), and filters or metadata keys we cannot honour are refused, never ignored (item 11).
 */
const HOST = 'testhub.azure-devices.net';
const config = testConfig({ IotHubHostName: HOST });
const adapters = createAdapters(config);
const service = new ProvisioningService({
  ...adapters,
  hostName: config.provisioning.hostName,
  maxMetadataBytes: config.provisioning.maxMetadataBytes,
});
const handlers = makeProvisioningHandlers(service);
const identities = (() => {
  if (!(adapters.identities instanceof TableIdentityStore))
    throw new Error('expected the table identity store');
  return adapters.identities;
})();

interface Call {
  status: number;
  body: Record<string, unknown>;
}

const OPERATION: Partial<Record<keyof typeof handlers, string>> = {
  resetCredentials: 'resetDeviceCredentials',
};

async function call(
  name: keyof typeof handlers,
  init: { method: string; path: string; id?: string; body?: string },
): Promise<Call> {
  const response = (await withProblemDetails(handlers[name])(
    new HttpRequest({
      method: init.method,
      url: `http://localhost:7071${init.path}`,
      params: init.id === undefined ? {} : { id: init.id },
      headers: { 'content-type': 'application/json' },
      ...(init.body === undefined ? {} : { body: { string: init.body } }),
    }),
    new InvocationContext({ functionName: name }),
  )) as HttpResponseInit;
  const raw: unknown =
    response.jsonBody ??
    (typeof response.body === 'string' && response.body !== '' ? JSON.parse(response.body) : {});
  const headers = (response.headers ?? {}) as Record<string, string>;
  expect(
    responseProblems(OPERATION[name] ?? name, response.status ?? 200, raw, headers['content-type']),
  ).toEqual([]);
  return { status: response.status ?? 200, body: raw as Record<string, unknown> };
}

const register = async (id: string, metadata: Record<string, unknown> = { site: 'north' }) => {
  const res = await call('registerDevice', {
    method: 'POST',
    path: '/api/devices',
    body: JSON.stringify({ id, metadata }),
  });
  expect(res.status).toBe(201);
  return res.body.keys as { primaryKey: string; secondaryKey: string };
};

/** Everything a request could change: the catalog entry, the identity (status, keys) and the twin. */
async function snapshot(id: string) {
  const record = await adapters.catalog.get(id);
  return {
    record,
    identity: await identities.get(id),
    twin: await adapters.twins.get(id),
  };
}

const gatewayVerdict = (id: string, key: string) =>
  identities.authenticate(
    id,
    createSasToken(`${HOST}/devices/${id}`, key, Math.floor(Date.now() / 1000) + 600),
    HOST,
  );

/** Bodies every route with metadata must refuse, raw JSON text. */
const BAD_METADATA: [string, (wrap: (metadata: string) => string) => string][] = [
  ['9 KB of metadata', (wrap) => wrap(JSON.stringify({ blob: 'x'.repeat(9000) }))],
  ['metadata nested 10,000 deep', (wrap) => wrap(`${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`)],
  ['a __proto__ key in the metadata', (wrap) => wrap('{"__proto__":{"polluted":true},"ok":1}')],
  ['a nested constructor key in the metadata', (wrap) => wrap('{"a":{"constructor":1}}')],
];

describe('a rejected request changes nothing (issue 12, item 7)', () => {
  const routes: [keyof typeof handlers, string, (metadata: string) => string][] = [
    ['deactivateDevice', 'deactivate', (m) => `{"metadata":${m}}`],
    ['activateDevice', 'activate', (m) => `{"metadata":${m}}`],
    ['updateDevice', '', (m) => m],
  ];
  for (const [name, action, wrap] of routes) {
    for (const [label, body] of BAD_METADATA) {
      it(`${name} with ${label}: 4xx, catalog, identity and gateway unchanged`, async () => {
        const id = `rej-${name}-${BAD_METADATA.findIndex(([l]) => l === label)}`;
        const keys = await register(id);
        // activate must not re-enable a deactivated device.
        if (name === 'activateDevice') await identities.setStatus(id, 'disabled');
        const before = await snapshot(id);
        const verdict = await gatewayVerdict(id, keys.primaryKey);
        const res = await call(name, {
          method: action === '' ? 'PATCH' : 'POST',
          path: `/api/devices/${id}${action === '' ? '' : `/${action}`}`,
          id,
          body: body(wrap),
        });
        expect([400, 422]).toContain(res.status);
        expect(await snapshot(id)).toEqual(before);
        expect(await gatewayVerdict(id, keys.primaryKey)).toBe(verdict);
      });
    }
  }

  it('register with bad metadata or keys creates no identity and no catalog entry', async () => {
    for (const [index, [, body]] of BAD_METADATA.entries()) {
      const id = `rej-register-${index}`;
      const res = await call('registerDevice', {
        method: 'POST',
        path: '/api/devices',
        body: body((m) => `{"id":"${id}","metadata":${m}}`),
      });
      expect([400, 422]).toContain(res.status);
      expect(await snapshot(id)).toEqual({ record: undefined, identity: undefined, twin: undefined });
    }
  });

  it('reset-credentials with bad keys and a twin patch with bad desired properties change nothing', async () => {
    const id = 'rej-reset';
    await register(id);
    const before = await snapshot(id);
    const reset = await call('resetCredentials', {
      method: 'POST',
      path: `/api/devices/${id}/reset-credentials`,
      id,
      body: '{"keys":{"primaryKey":"x","secondaryKey":"y"}}',
    });
    expect(reset.status).toBe(422);
    for (const [, body] of BAD_METADATA) {
      const res = await call('updateDeviceTwin', {
        method: 'PATCH',
        path: `/api/devices/${id}/twin`,
        id,
        body: body((m) => `{"desired":${m}}`),
      });
      expect([400, 422]).toContain(res.status);
    }
    expect(await snapshot(id)).toEqual(before);
  });
});

describe('metadata keys and filters we cannot honour are refused (issue 12, item 11)', () => {
  it('names the refused __proto__ key instead of dropping it', async () => {
    const res = await call('registerDevice', {
      method: 'POST',
      path: '/api/devices',
      body: '{"id":"proto-1","metadata":{"__proto__":{"x":1},"site":"a"}}',
    });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([expect.objectContaining({ path: 'metadata.__proto__' })]);
  });

  it('the service itself refuses reserved keys from any caller, before any write', async () => {
    await register('proto-service');
    const before = await snapshot('proto-service');
    const patch = JSON.parse('{"a":{"__proto__":{"x":1}}}') as Record<string, unknown>;
    await expect(service.update('proto-service', patch)).rejects.toBeInstanceOf(UnprocessableRequestError);
    await expect(service.setStatus('proto-service', 'disabled', patch)).rejects.toBeInstanceOf(
      UnprocessableRequestError,
    );
    await expect(service.register({ id: 'proto-service-2', metadata: patch })).rejects.toBeInstanceOf(
      UnprocessableRequestError,
    );
    expect(await snapshot('proto-service')).toEqual(before);
    expect(await identities.get('proto-service-2')).toBeUndefined();
  });

  it.each(['__proto__', 'constructor', 'prototype'])(
    'GET /api/devices?metadata.%s=x is 422, not match-all',
    async (field) => {
      await register(`proto-list-${field}`);
      const res = await call('listDevices', { method: 'GET', path: `/api/devices?metadata.${field}=x` });
      expect(res.status).toBe(422);
      expect(res.body.errors).toEqual([expect.objectContaining({ path: `metadata.${field}` })]);
    },
  );
});

describe('a filter we cannot apply is refused', () => {
  it('a metadata filter field given twice is 422, not one of them silently', async () => {
    const res = await call('listDevices', {
      method: 'GET',
      path: '/api/devices?metadata.site=a&metadata.site=b',
    });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([expect.objectContaining({ path: 'metadata.site' })]);
  });
});

describe('concurrent credential resets (issue 12, item 9)', () => {
  it('20 at once: losers get 409, and every key set answered with 200 is the one the store holds', async () => {
    const id = 'reset-race';
    await register(id);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        call('resetCredentials', { method: 'POST', path: `/api/devices/${id}/reset-credentials`, id }),
      ),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
    const winners = answers.filter((a) => a.status === 200);
    expect(winners.length).toBeGreaterThanOrEqual(1);
    const stored = (await identities.get(id))?.keys;
    for (const winner of winners) {
      const keys = winner.body.keys as { primaryKey: string; secondaryKey: string };
      expect(keys).toEqual(stored);
      expect(await gatewayVerdict(id, keys.primaryKey)).toBe('valid');
      expect(await gatewayVerdict(id, keys.secondaryKey)).toBe('valid');
    }
    for (const loser of answers.filter((a) => a.status === 409)) {
      expect(loser.body).toMatchObject({ status: 409 });
      expect(loser.body.keys).toBeUndefined();
    }
  });
});
