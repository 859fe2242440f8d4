/**
 * Issue 15, item 2.5: the Functions host refuses a request to a non-anonymous HTTP function (authLevel 'function')
 * without a valid key (`x-functions-key` header or `?code=`) with 401, before the function runs; the embedded
 * runtime used to answer every route without a key, so anything that worked locally (the Slack links to
 * /api/devices/{id}/state) could answer 401 in Azure. With keys (as `npm start -- --keys` starts it), it checks
 * them the same way, on every route of the route table.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_ROUTES } from '../../../src/http/openapi.js';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { testSettings } from '../../support/local-env.js';

const FUNCTION_KEY = 'local-function-key-for-tests-0123456789';
const MASTER_KEY = 'local-master-key-for-tests-0123456789';

let runtime: Runtime;
beforeAll(async () => {
  runtime = await startRuntime({
    settings: testSettings(),
    port: 0,
    log: () => undefined,
    functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
    keys: { functionKey: FUNCTION_KEY, masterKey: MASTER_KEY },
  });
});
afterAll(async () => {
  await runtime.stop();
});

/** A path of the route, with its parameters filled in (values no function will find). */
const pathOf = (template: string) => template.replace(/\{[^}]+\}/g, 'no-such-thing');

async function status(method: string, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${runtime.apiBaseUrl}${path}`, { method, headers });
  await response.arrayBuffer();
  return response.status;
}

describe('embedded runtime: function keys', () => {
  it('answers 401 without a key on every non-anonymous route, and serves the anonymous ones', async () => {
    const unauthorized: string[] = [];
    const open: string[] = [];
    for (const route of API_ROUTES) {
      const code = await status(route.method.toUpperCase(), pathOf(route.path));
      const label = `${route.method.toUpperCase()} ${route.path}`;
      if (code === 401) unauthorized.push(label);
      else open.push(label);
    }
    const expectedOpen = API_ROUTES.filter((r) => r.anonymous).map(
      (r) => `${r.method.toUpperCase()} ${r.path}`,
    );
    expect(open.sort()).toEqual(expectedOpen.sort());
    expect(unauthorized).toHaveLength(API_ROUTES.length - expectedOpen.length);
  });

  it('accepts the function key or the master key, in the header or as ?code=', async () => {
    const path = '/devices/no-such-device/state';
    expect(await status('GET', path, { 'x-functions-key': FUNCTION_KEY })).toBe(404);
    expect(await status('GET', path, { 'x-functions-key': MASTER_KEY })).toBe(404);
    expect(await status('GET', `${path}?code=${FUNCTION_KEY}`)).toBe(404);
  });

  it('refuses a wrong or empty key with 401 and no body, without running the function', async () => {
    const path = '/devices/no-such-device/state';
    expect(await status('GET', path, { 'x-functions-key': `${FUNCTION_KEY}x` })).toBe(401);
    expect(await status('GET', `${path}?code=`)).toBe(401);
    const response = await fetch(`${runtime.apiBaseUrl}${path}?code=wrong`);
    expect(response.status).toBe(401);
    expect(await response.text()).toBe('');
  });

  it('guards the Durable management webhooks with the master key only; a workflow started through the API still runs', async () => {
    const webhook = `${runtime.origin}/runtime/webhooks/durabletask/instances/no-such-instance`;
    const at = async (url: string, headers: Record<string, string> = {}) => {
      const response = await fetch(url, { headers });
      await response.arrayBuffer();
      return response.status;
    };
    expect(await at(webhook)).toBe(401);
    expect(await at(webhook, { 'x-functions-key': FUNCTION_KEY })).toBe(401);
    expect(await at(`${webhook}?code=${MASTER_KEY}`)).toBe(404);
    // The app's own durable client (its management URLs carry the key) starts and reads a bulk run.
    const started = await fetch(`${runtime.apiBaseUrl}/provisioning/bulk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-functions-key': FUNCTION_KEY },
      body: JSON.stringify([{ id: 'keys-bulk-1' }]),
    });
    expect(started.status).toBe(202);
    const { statusUri } = (await started.json()) as { statusUri: string };
    const polled = await fetch(`${runtime.origin}${statusUri}`, {
      headers: { 'x-functions-key': FUNCTION_KEY },
    });
    expect(polled.status).toBe(200);
  });
});
