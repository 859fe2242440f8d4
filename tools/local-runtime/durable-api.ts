/**
 * Durable Functions' HTTP surface in the embedded runtime: the RPC API the durable client calls (`/durabletask/…`),
 * the management webhooks the status URLs point to (`/runtime/webhooks/durabletask/instances/{id}`), and the
 * binding data a `durableClient` input receives.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InstanceNotSavedError, type DurableEngine } from './durable-engine.js';
import { readBody, send, type RequestHandler } from './http-io.js';
import { authorized, type FunctionKeys } from './function-keys.js';
import { formatLogValue } from './log-format.js';

/** What the durable client binding hands a function: the task hub and the URLs of this runtime's API. */
export function durableClientData(origin: string, taskHub: string, systemKey = 'local') {
  const base = `${origin}/runtime/webhooks/durabletask`;
  const code = `code=${encodeURIComponent(systemKey)}`;
  const query = `taskHub=${taskHub}&connection=Storage&${code}`;
  return {
    taskHubName: taskHub,
    creationUrls: {
      createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?${code}`,
      createAndWaitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&${code}`,
    },
    managementUrls: {
      id: 'INSTANCEID',
      statusQueryGetUri: `${base}/instances/INSTANCEID?${query}`,
      sendEventPostUri: `${base}/instances/INSTANCEID/raiseEvent/{eventName}?${query}`,
      terminatePostUri: `${base}/instances/INSTANCEID/terminate?reason={text}&${query}`,
      purgeHistoryDeleteUri: `${base}/instances/INSTANCEID?${query}`,
    },
    baseUrl: base,
    requiredQueryStringParameters: code,
    rpcBaseUrl: `${origin}/durabletask/`,
    httpBaseUrl: base,
  };
}

/** An instance's status as the management API answers it (dates in ISO form). */
function statusBody(engine: DurableEngine, instanceId: string) {
  const s = engine.status(instanceId);
  if (!s) return undefined;
  return {
    name: s.name,
    instanceId: s.instanceId,
    runtimeStatus: s.runtimeStatus,
    input: s.input ?? null,
    customStatus: s.customStatus ?? null,
    output: s.output ?? null,
    createdTime: s.createdTime.toISOString(),
    lastUpdatedTime: s.lastUpdatedTime.toISOString(),
  };
}

/** `POST …/orchestrators/{name}[/{instanceId}]`: saved before the 202, so an acknowledged start survives a crash. */
async function startOrchestration(
  engine: DurableEngine,
  req: IncomingMessage,
  res: ServerResponse,
  rest: string[],
) {
  const text = (await readBody(req)).toString('utf8');
  const instanceId = rest[2] ?? randomUUID().replaceAll('-', '');
  try {
    await engine.startDurably(rest[1] ?? '', instanceId, text ? (JSON.parse(text) as unknown) : undefined);
  } catch (error) {
    const status = error instanceof InstanceNotSavedError ? 503 : 409;
    send(res, status, { message: error instanceof Error ? error.message : formatLogValue(error) });
    return;
  }
  send(res, 202, { id: instanceId });
}

/** The management API of one instance: status, purge, raise event, terminate. */
async function manageInstance(
  engine: DurableEngine,
  req: IncomingMessage,
  res: ServerResponse,
  rest: string[],
  url: URL,
) {
  const method = req.method ?? 'GET';
  const instanceId = rest[1] ?? '';
  if (method === 'GET' && rest.length === 2) {
    const body = statusBody(engine, instanceId);
    if (!body) send(res, 404, { message: `No instance '${instanceId}'.` });
    else send(res, ['Pending', 'Running'].includes(body.runtimeStatus) ? 202 : 200, body);
    return;
  }
  if (method === 'DELETE' && rest.length === 2) {
    const purged = engine.purge(instanceId);
    send(res, purged ? 200 : 404, { instancesDeleted: purged ? 1 : 0 });
    return;
  }
  try {
    if (method === 'POST' && rest[2] === 'raiseEvent' && rest[3]) {
      const text = (await readBody(req)).toString('utf8');
      engine.raiseEvent(instanceId, rest[3], text ? (JSON.parse(text) as unknown) : undefined);
      send(res, 202);
      return;
    }
    if (method === 'POST' && rest[2] === 'terminate') {
      engine.terminate(instanceId, url.searchParams.get('reason') ?? 'terminated');
      send(res, 202);
      return;
    }
  } catch {
    send(res, engine.status(instanceId) ? 410 : 404);
    return;
  }
  send(res, 404, { message: 'unknown durable API route' });
}

/**
 * Durable's management API (the status URLs) and the RPC API the durable client calls. With keys, the
 * management webhooks take only the master key (`x-functions-key` or `?code=`), as in Azure, where they need the
 * extension's system key or the master key; the RPC API is the in-process client's (the host serves it on
 * localhost only, without a key).
 */
export function durableApi(engine: DurableEngine, keys?: FunctionKeys): RequestHandler {
  return async (req, res, path, url) => {
    const m = /^\/(?:(runtime\/webhooks\/)?durabletask)\/(.*)$/.exec(path);
    if (!m) return false;
    if (m[1] !== undefined && !authorized('admin', req, url, keys)) {
      send(res, 401);
      return true;
    }
    const rest = (m[2] ?? '').split('/').map(decodeURIComponent);
    if (rest[0] === 'orchestrators' && req.method === 'POST' && rest[1]) {
      await startOrchestration(engine, req, res, rest);
    } else if (rest[0] !== 'instances' || !rest[1]) {
      send(res, 404, { message: 'unknown durable API route' });
    } else {
      await manageInstance(engine, req, res, rest, url);
    }
    return true;
  };
}
