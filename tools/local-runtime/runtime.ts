/**
 * The embedded local runtime: what `npm start` runs when Azure Functions Core Tools are not installed. It
 * loads the app through its real entry point with a local `@azure/functions-core` provider, so every
 * `app.*` / `df.app.*` registration is served with its binding metadata:
 *
 * - HTTP triggers at `http://localhost:{port}/{routePrefix}/…` (route templates, methods, host.json prefix);
 * - Event Hub triggers fed by in-process hubs (partitions, batches of `maxEventBatchSize`, the IoT Hub
 *   built-in endpoint's trigger metadata, at-least-once with the function's retry policy);
 * - a device gateway `POST /devices/{id}/messages/events` (IoT Hub's device HTTPS API, SAS-authenticated
 *   against the identity store) feeding the IoT Hub events hub;
 * - the local rule evaluator reading those events and writing anomalies to the anomalies hub;
 * - Durable Functions: the local durable engine, with the management HTTP API the durable client and the
 *   status URLs use.
 */
import { TableClient } from '@azure/data-tables';
import functions, { type HttpResponseInit } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import Module, { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config.js';
import { toProblemResponse } from '../../src/http/problem.js';
import { createAdapters } from '../../src/infra/adapters.js';
import { localDeviceConnections } from '../../src/infra/local/local-device-connections.js';
import { parseSasToken, verifyDeviceSasToken } from '../../src/provisioning/sas-token.js';
import { PayloadTooLargeError, ServiceUnavailableError, ValidationError } from '../../src/shared/errors.js';
import { DurableEngine, InstanceNotSavedError, type ActivityHandler } from './durable-engine.js';
import { describeFunctions } from './function-list.js';
import { InvocationTracker, levelOfHost, type Logger } from './invocation-log.js';
import { formatLogArgs, formatLogValue } from './log-format.js';
import { DurableLocalHub, localHub } from './durable-hubs.js';
import { startEventHubTrigger, triggerBinding, type LocalHub, type Registration } from './event-hubs.js';
import { LocalRuleEvaluator } from './rule-evaluator.js';
import { TableInstanceStore } from './table-instance-store.js';
import { startTimers } from './timers.js';

const { HttpRequest, InvocationContext } = functions;

export interface RuntimeOptions {
  /** App settings (what local.settings.json holds). */
  settings: Record<string, string>;
  /** HTTP port (0 = a free one). */
  port: number;
  /** Where lines go, each with its level (filter with makeLogger). */
  log: Logger;
  /** How long a shutdown waits for running invocations and open requests (ms; default 10 000). */
  shutdownGraceMs?: number;
  /** The `@azure/functions-core` provider module (default: the compiled one beside this file; tests pass theirs). */
  functionsCore?: string;
  /** Keeps the in-process Event Hubs' events here (`{folder}/<hub>.jsonl`) so a crash loses none it acknowledged. */
  hubsFolder?: string;
}

export interface Runtime {
  /** e.g. http://localhost:7071 */
  origin: string;
  apiBaseUrl: string;
  gatewayUrl: string;
  /** What the runtime keeps in memory that grows with traffic (the soak benchmark watches it stay bounded). */
  memory(): RuntimeMemory;
  /**
   * The runtime's part of the ordered shutdown: stop accepting requests → stop triggers → let in-flight
   * invocations finish (bounded by shutdownGraceMs) → save durable instances. Each step is logged.
   */
  stop(): Promise<void>;
}

export interface RuntimeMemory {
  /** Events kept by the in-process hubs (not yet checkpointed by every consumer group). */
  hubEvents: number;
  /** The local rule evaluator's devices, readings and emitted-anomaly keys. */
  rules: { devices: number; points: number; emitted: number };
  /** Direct-method requests waiting for a device. */
  methodRequests: number;
}

const TASK_HUB = 'IotBackendHub';

/** Route template → matcher; literal segments outrank parameters, as the Functions host routes. */
function compileRoute(template: string): {
  score: number;
  match: (path: string) => Record<string, string> | undefined;
} {
  const segments = template.split('/').filter(Boolean);
  const score = segments.length * 100 + segments.filter((s) => !s.startsWith('{')).length;
  return {
    score,
    match: (path) => {
      const parts = path.split('/').filter(Boolean);
      if (parts.length !== segments.length) return undefined;
      const params: Record<string, string> = {};
      for (const [i, segment] of segments.entries()) {
        const part = decodeURIComponent(parts[i] ?? '');
        const param = /^\{([^}:?]+)/.exec(segment);
        if (param?.[1]) params[param[1]] = part;
        else if (segment.toLowerCase() !== part.toLowerCase()) return undefined;
      }
      return params;
    },
  };
}

/** IoT Hub's largest device-to-cloud message (256 KiB): the gateway answers 413 above it, as IoT Hub does. */
const MAX_DEVICE_MESSAGE_BYTES = 256 * 1024;

/** Refused because the body is larger than the limit; nothing past the limit was kept. */
class BodyTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`The body is larger than ${maxBytes} bytes.`);
  }
}

/** Reads a body, stopping (BodyTooLarge) as soon as it or its Content-Length passes `maxBytes`. */
const readBody = async (req: IncomingMessage, maxBytes = Number.POSITIVE_INFINITY): Promise<Buffer> => {
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw new BodyTooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new BodyTooLarge(maxBytes);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
};

/** An error body as IoT Hub's device HTTPS API answers it (`Message` with the error code, `ExceptionMessage`). */
const iotHubError = (code: string, message: string) => ({
  Message: `ErrorCode:${code};${message}`,
  ExceptionMessage: `Tracking ID:${randomUUID().replaceAll('-', '')}-G:0-TimeStamp:${new Date().toISOString()}`,
});

/** Whether every %-escape of the path decodes to well-formed UTF-8 (what a host needs to route it). */
const decodablePath = (path: string): boolean => {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
};

/** Sends a problem+json answer made by the app's own mapper (src/http/problem.ts). */
function sendProblem(
  res: ServerResponse,
  error: unknown,
  instance: string,
  headers: Record<string, string> = {},
) {
  const problem = toProblemResponse(error, instance);
  send(res, problem.status ?? 500, typeof problem.body === 'string' ? problem.body : '', {
    ...(problem.headers as Record<string, string>),
    ...headers,
  });
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    ...(body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}),
    ...headers,
  });
  res.end(text);
}

/** Loads the app, starts every trigger, and serves HTTP; resolves when the API is ready. */
export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { settings, log } = options;
  Object.assign(process.env, settings);

  // The library registers through `@azure/functions-core`, which the real host provides: provide it.
  const core = options.functionsCore ?? fileURLToPath(new URL('./functions-core.cjs', import.meta.url));
  const internals = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
  };
  const original = internals._resolveFilename;
  internals._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]) {
    // eslint-disable-next-line no-restricted-syntax -- forwards Node's own few resolver arguments
    return request === '@azure/functions-core' ? core : original.call(this, request, ...rest);
  };
  const quiet = console.warn;
  console.warn = () => undefined; // the library's notice about running outside the real host
  try {
    await import('../../src/index.js');
  } finally {
    console.warn = quiet;
  }
  const { registrations } = createRequire(import.meta.url)(core) as { registrations: Registration[] };

  // host.json is at the repository root: two levels up from the sources, three from dist/.
  const hostJsonUrl = [
    new URL('../../host.json', import.meta.url),
    new URL('../../../host.json', import.meta.url),
  ].find((url) => existsSync(url));
  const hostJson = JSON.parse(readFileSync(hostJsonUrl ?? 'host.json', 'utf8')) as {
    extensions?: { http?: { routePrefix?: string }; eventHubs?: { maxEventBatchSize?: number } };
  };
  const routePrefix = hostJson.extensions?.http?.routePrefix ?? 'api';
  const maxBatch = hostJson.extensions?.eventHubs?.maxEventBatchSize ?? 100;
  const trigger = triggerBinding;
  // Every trigger the runtime serves is counted (a shutdown waits for it) and logged (Executing/Executed).
  const invocations = new InvocationTracker();
  const tracked = (r: Registration): Registration => {
    const kind = { httpTrigger: 'http', eventHubTrigger: 'eventHub', timerTrigger: 'timer' } as const;
    const type = String(trigger(r)?.type) as keyof typeof kind;
    if (!(type in kind)) return r;
    return { ...r, callback: invocations.wrap(r.metadata.name, kind[type], log, r.callback) };
  };
  const byType = (type: string) => registrations.filter((r) => trigger(r)?.type === type).map(tracked);

  const engine = new DurableEngine({
    orchestrators: new Map(byType('orchestrationTrigger').map((r) => [r.metadata.name, r.callback])),
    activities: new Map(
      byType('activityTrigger').map((r) => [r.metadata.name, r.callback as ActivityHandler]),
    ),
    clock: 'real',
    log,
    // Instances survive a restart: snapshots (history included) in the Functions host's storage account.
    store: new TableInstanceStore(
      TableClient.fromConnectionString(settings.AzureWebJobsStorage ?? '', 'DurableInstances', {
        allowInsecureConnection: /https?:\/\/127\.0\.0\.1|UseDevelopmentStorage=true/.test(
          settings.AzureWebJobsStorage ?? '',
        ),
      }),
      log,
    ),
  });
  const restored = await engine.restore();
  if (restored > 0) log(`durable: ${restored} instances restored from Azurite`);

  // Event Hubs and their triggers.
  const hubs = new Map<string, LocalHub>();
  const hub = (name: string) => {
    let found = hubs.get(name);
    if (!found) hubs.set(name, (found = localHub(name, options.hubsFolder, log)));
    return found;
  };
  const consumers: { stop: () => Promise<void> }[] = byType('eventHubTrigger').map((registration) =>
    startEventHubTrigger(registration, { settings, hub, maxBatch, log }),
  );

  // The hot path: the local rule evaluator (asa/anomalies.asaql's threshold rules) → anomalies hub.
  const iotHub = hub(settings.IotHubEventHubName ?? 'iothub-events');
  const anomalies = hub(settings.AnomaliesEventHubName ?? 'anomalies');
  const evaluator = new LocalRuleEvaluator();
  consumers.push(
    iotHub.consume('asa', maxBatch, async (batch) => {
      for (const event of batch) {
        const rawId = event.systemProperties['iothub-connection-device-id'];
        const deviceId = typeof rawId === 'string' ? rawId : '';
        let values: unknown;
        try {
          values = JSON.parse(event.body.toString('utf8'));
        } catch {
          continue;
        }
        if (!deviceId || typeof values !== 'object' || values === null || Array.isArray(values)) continue;
        const record = values as Record<string, unknown>;
        const given = typeof record.ts === 'string' ? record.ts : record.timestamp;
        const stamp = Date.parse(typeof given === 'string' ? given : '');
        const time = Number.isFinite(stamp) ? stamp : Date.parse(event.enqueuedTime);
        for (const output of evaluator.add({ deviceId, time, values: record })) {
          anomalies.publish(output, output.deviceId, {}, {});
        }
      }
      return Promise.resolve();
    }),
  );

  // Timer triggers (e.g. redeliverAlerts) on their schedules.
  const timers = startTimers(byType('timerTrigger'), { settings, log });

  // HTTP routes of the app.
  const routes = byType('httpTrigger')
    .map((registration) => {
      const binding = trigger(registration) ?? {};
      const template = typeof binding.route === 'string' ? binding.route : registration.metadata.name;
      const extraInputs = Object.entries(registration.metadata.bindings)
        .filter(([, b]) => b.type === 'durableClient')
        .map(([name, b]) => ({ ...b, name }));
      return {
        registration,
        methods: ((binding.methods as string[] | undefined) ?? ['GET', 'POST']).map((m) => m.toUpperCase()),
        extraInputs,
        ...compileRoute(template),
      };
    })
    .sort((a, b) => b.score - a.score);

  const config = loadConfig(settings);
  const adapters = createAdapters(config);
  // The host reads a body before the function sees it; stop at the largest limit any route has.
  const maxApiBody = Math.max(config.http.maxBodyBytes, config.http.maxBulkBodyBytes);
  const hostName = settings.IotHubHostName ?? 'localhost';
  let origin = '';

  const durableClientData = () => {
    const base = `${origin}/runtime/webhooks/durabletask`;
    const query = `taskHub=${TASK_HUB}&connection=Storage&code=local`;
    return {
      taskHubName: TASK_HUB,
      creationUrls: {
        createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?code=local`,
        createAndWaitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&code=local`,
      },
      managementUrls: {
        id: 'INSTANCEID',
        statusQueryGetUri: `${base}/instances/INSTANCEID?${query}`,
        sendEventPostUri: `${base}/instances/INSTANCEID/raiseEvent/{eventName}?${query}`,
        terminatePostUri: `${base}/instances/INSTANCEID/terminate?reason={text}&${query}`,
        purgeHistoryDeleteUri: `${base}/instances/INSTANCEID?${query}`,
      },
      baseUrl: base,
      requiredQueryStringParameters: 'code=local',
      rpcBaseUrl: `${origin}/durabletask/`,
      httpBaseUrl: base,
    };
  };

  const statusBody = (instanceId: string) => {
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
  };

  /** Durable's management API (the status URLs) and the RPC API the durable client calls. */
  const durableApi = async (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    url: URL,
  ): Promise<boolean> => {
    const m = /^\/(?:runtime\/webhooks\/durabletask|durabletask)\/(.*)$/.exec(path);
    if (!m) return false;
    const rest = (m[1] ?? '').split('/').map(decodeURIComponent);
    const method = req.method ?? 'GET';
    if (rest[0] === 'orchestrators' && method === 'POST' && rest[1]) {
      const text = (await readBody(req)).toString('utf8');
      const instanceId = rest[2] ?? randomUUID().replaceAll('-', '');
      try {
        // Saved before the 202: an acknowledged start survives a crash.
        await engine.startDurably(rest[1], instanceId, text ? (JSON.parse(text) as unknown) : undefined);
      } catch (error) {
        const status = error instanceof InstanceNotSavedError ? 503 : 409;
        send(res, status, { message: error instanceof Error ? error.message : formatLogValue(error) });
        return true;
      }
      send(res, 202, { id: instanceId });
      return true;
    }
    if (rest[0] !== 'instances' || !rest[1]) {
      send(res, 404, { message: 'unknown durable API route' });
      return true;
    }
    const instanceId = rest[1];
    if (method === 'GET' && rest.length === 2) {
      const body = statusBody(instanceId);
      if (!body) send(res, 404, { message: `No instance '${instanceId}'.` });
      else send(res, ['Pending', 'Running'].includes(body.runtimeStatus) ? 202 : 200, body);
      return true;
    }
    if (method === 'DELETE' && rest.length === 2) {
      const purged = engine.purge(instanceId);
      send(res, purged ? 200 : 404, { instancesDeleted: purged ? 1 : 0 });
      return true;
    }
    try {
      if (method === 'POST' && rest[2] === 'raiseEvent' && rest[3]) {
        const text = (await readBody(req)).toString('utf8');
        engine.raiseEvent(instanceId, rest[3], text ? (JSON.parse(text) as unknown) : undefined);
        send(res, 202);
        return true;
      }
      if (method === 'POST' && rest[2] === 'terminate') {
        engine.terminate(instanceId, url.searchParams.get('reason') ?? 'terminated');
        send(res, 202);
        return true;
      }
    } catch {
      send(res, engine.status(instanceId) ? 410 : 404);
      return true;
    }
    send(res, 404, { message: 'unknown durable API route' });
    return true;
  };

  /** The device's identity when its SAS token is valid; otherwise the refusal has been sent. */
  const authenticate = async (req: IncomingMessage, res: ServerResponse, deviceId: string) => {
    const authorization = req.headers.authorization ?? '';
    let identity: Awaited<ReturnType<typeof adapters.identities.get>>;
    try {
      identity = parseSasToken(authorization) ? await adapters.identities.get(deviceId) : undefined;
    } catch (error) {
      // The identity store is unavailable: that is no verdict on the token. A device SDK gives up on 401 but
      // retries a 503, so a storage outage must never look like bad credentials.
      log(`gateway: identity store unavailable (${error instanceof Error ? error.message : String(error)})`);
      const unavailable =
        error instanceof ServiceUnavailableError
          ? error
          : new ServiceUnavailableError('The identity store is unavailable; retry later.');
      sendProblem(res, unavailable, req.url ?? '');
      return false;
    }
    const verdict = identity
      ? verifyDeviceSasToken(authorization, {
          hostName,
          deviceId,
          keys: [identity.keys.primaryKey, identity.keys.secondaryKey],
          nowSeconds: Math.floor(Date.now() / 1000),
        })
      : 'invalid';
    if (!identity || verdict !== 'valid') {
      send(res, 401, { Message: 'ErrorCode:IotHubUnauthorizedAccess;Unauthorized' });
      return false;
    }
    if (identity.status !== 'enabled') {
      send(res, 403, { Message: 'ErrorCode:DeviceDisabled;The device is disabled' });
      return false;
    }
    return true;
  };

  /**
   * Direct methods for devices of the local run (IoT Hub delivers them over MQTT/AMQP; locally a device
   * long-polls): `GET /devices/{id}/methods/pending?waitSeconds=20` → 200 `{ requestId, name, payload }` or 204;
   * `POST /devices/{id}/methods/{requestId}/response` `{ status, payload }` → 204.
   */
  const methods = async (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    url: URL,
  ): Promise<boolean> => {
    const m = /^\/devices\/([^/]+)\/methods\/(pending|[^/]+\/response)$/.exec(path);
    if (!m) return false;
    const deviceId = decodeURIComponent(m[1] ?? '');
    if (!(await authenticate(req, res, deviceId))) return true;
    if (m[2] === 'pending' && req.method === 'GET') {
      const wait = Math.min(60, Math.max(0, Number(url.searchParams.get('waitSeconds') ?? '20') || 0));
      // Stopping answers every open long-poll 204 at once: the shutdown does not wait for devices.
      const request = await localDeviceConnections.nextRequest(deviceId, wait * 1000, stopping.signal);
      if (request) send(res, 200, request);
      else send(res, 204);
      return true;
    }
    if (req.method === 'POST' && m[2]?.endsWith('/response')) {
      const requestId = decodeURIComponent(m[2].slice(0, -'/response'.length));
      const text = (await readBody(req, MAX_DEVICE_MESSAGE_BYTES)).toString('utf8');
      let answer: { status?: unknown; payload?: unknown };
      try {
        answer = JSON.parse(text || '{}') as typeof answer;
      } catch {
        send(res, 400, { message: 'The body is not valid JSON.' });
        return true;
      }
      const status = typeof answer.status === 'number' ? answer.status : 200;
      const known = localDeviceConnections.respond(deviceId, requestId, { status, payload: answer.payload });
      send(res, known ? 204 : 404, known ? undefined : { message: 'Unknown or expired request.' });
      return true;
    }
    send(res, 405);
    return true;
  };

  /** IoT Hub's device HTTPS API for telemetry: `POST /devices/{id}/messages/events`. */
  const gateway = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    const m = /^\/devices\/([^/]+)\/messages\/events$/.exec(path);
    if (!m) return false;
    if (req.method !== 'POST') {
      send(res, 405);
      return true;
    }
    const deviceId = decodeURIComponent(m[1] ?? '');
    if (!(await authenticate(req, res, deviceId))) return true;
    let body: Buffer;
    try {
      body = await readBody(req, MAX_DEVICE_MESSAGE_BYTES);
    } catch (error) {
      if (!(error instanceof BodyTooLarge)) throw error;
      // IoT Hub's answer (error code 413002): its own body shape, not problem+json; nothing is kept.
      send(
        res,
        413,
        iotHubError('MessageTooLarge', `Message size exceeds the maximum of ${error.maxBytes} bytes.`),
        {
          connection: 'close',
        },
      );
      return true;
    }
    const properties: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (name.startsWith('iothub-app-') && typeof value === 'string')
        properties[name.slice('iothub-app-'.length)] = value;
    }
    iotHub.publish(body, deviceId, properties, {
      'iothub-connection-device-id': deviceId,
      'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
      'iothub-enqueuedtime': new Date().toISOString(),
      'iothub-message-source': 'Telemetry',
      ...(typeof req.headers['iothub-messageid'] === 'string'
        ? { 'message-id': req.headers['iothub-messageid'] }
        : {}),
      ...(req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {}),
    });
    // Acknowledged means on disk (with a data folder): the 204 waits for the event's fsync.
    if (iotHub instanceof DurableLocalHub) await iotHub.synced();
    send(res, 204);
    return true;
  };

  /** Aborted when the runtime stops (ends the devices' long-polls). */
  const stopping = new AbortController();
  /** HTTP requests not yet answered (a shutdown reports those it stopped without). */
  let openRequests = 0;
  const server = createServer((req, res) => {
    openRequests++;
    res.once('close', () => openRequests--);
    void (async () => {
      const url = new URL(req.url ?? '/', origin || 'http://localhost');
      const path = url.pathname;
      try {
        if (!decodablePath(path)) {
          // A host cannot route a path whose %-escapes are not UTF-8: 400, whatever the route.
          sendProblem(res, new ValidationError('The path is not valid percent-encoded UTF-8.'), path);
          return;
        }
        if (await durableApi(req, res, path, url)) return;
        if (await gateway(req, res, path)) return;
        if (await methods(req, res, path, url)) return;
        const prefix = `/${routePrefix}/`;
        if (!path.startsWith(prefix)) {
          send(res, 404, { message: 'Not found' });
          return;
        }
        const routePath = path.slice(prefix.length);
        for (const route of routes) {
          const params = route.match(routePath);
          if (!params || !route.methods.includes(req.method ?? 'GET')) continue;
          const body = await readBody(req, maxApiBody);
          const request = new HttpRequest({
            method: req.method ?? 'GET',
            url: url.href,
            headers: Object.fromEntries(
              Object.entries(req.headers).flatMap(([k, v]) =>
                typeof v === 'string' ? [[k, v]] : Array.isArray(v) ? [[k, v.join(', ')]] : [],
              ),
            ),
            query: Object.fromEntries(url.searchParams),
            params,
            ...(body.length > 0 ? { body: { bytes: body } } : {}),
          });
          const context = new InvocationContext({
            functionName: route.registration.metadata.name,
            invocationId: randomUUID(),
            options: {
              trigger: { type: 'httpTrigger', name: 'request' },
              extraInputs: route.extraInputs as never[],
            },
            logHandler: (level, ...args) => {
              log(`[${route.registration.metadata.name}] ${formatLogArgs(args)}`, levelOfHost(level));
            },
          });
          for (const input of route.extraInputs) context.extraInputs.set(input.name, durableClientData());
          const reply = (await route.registration.callback(request, context)) as HttpResponseInit & {
            headers?: Record<string, string> | Headers;
          };
          const headers = Object.fromEntries(
            reply.headers instanceof Headers ? reply.headers : Object.entries(reply.headers ?? {}),
          );
          if (reply.jsonBody !== undefined) {
            send(res, reply.status ?? 200, JSON.stringify(reply.jsonBody), {
              'content-type': 'application/json',
              ...headers,
            });
          } else {
            send(res, reply.status ?? 200, typeof reply.body === 'string' ? reply.body : undefined, headers);
          }
          return;
        }
        send(res, 404, { message: `No function serves ${req.method ?? 'GET'} ${path}` });
      } catch (error) {
        if (error instanceof BodyTooLarge) {
          // Stop reading: answer now and close the connection rather than drain the rest.
          sendProblem(res, new PayloadTooLargeError(error.maxBytes), path, { connection: 'close' });
          return;
        }
        log(
          `HTTP ${req.method ?? ''} ${path} failed: ${error instanceof Error ? (error.stack ?? error.message) : formatLogValue(error)}`,
        );
        if (!res.headersSent) send(res, 500, { message: 'Internal error' });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  origin = `http://localhost:${port}`;
  // The durable client rewrites management URLs to localhost:7071 unless it knows the host name.
  process.env.WEBSITE_HOSTNAME = `localhost:${port}`;
  log(
    `${registrations.length} functions loaded: ${routes.length} HTTP, ${byType('eventHubTrigger').length} Event Hub, ${timers.count} timer, ${byType('orchestrationTrigger').length} orchestrations, ${byType('activityTrigger').length} activities`,
  );
  log(describeFunctions(registrations, origin, routePrefix));
  const graceMs = options.shutdownGraceMs ?? 10_000;

  return {
    origin,
    apiBaseUrl: `${origin}/${routePrefix}`,
    gatewayUrl: `${origin}/devices/{id}/messages/events`,
    memory: () => ({
      hubEvents: [...hubs.values()].reduce((sum, h) => sum + h.retained(), 0),
      rules: evaluator.size(),
      methodRequests: localDeviceConnections.size().pending,
    }),
    stop: async () => {
      const closed = new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
      server.closeIdleConnections();
      stopping.abort();
      log('  stopped accepting requests');
      const triggersStopped = Promise.all([...consumers.map((c) => c.stop()), timers.stop()]);
      log(`  stopping triggers: ${consumers.length} Event Hub consumers, ${timers.count} timers`);
      const running = invocations.inFlight;
      const finished = await within(graceMs, Promise.all([triggersStopped, invocations.idle(), closed]));
      const [left, open] = [invocations.inFlight, openRequests];
      server.closeAllConnections();
      log(
        finished
          ? `  in-flight invocations finished (${running} were running)`
          : `  ${left} invocations and ${open} open HTTP requests still running after ${graceMs} ms: stopped without them`,
      );
      for (const h of hubs.values()) if (h instanceof DurableLocalHub) await h.close();
      log('  in-process Event Hubs closed');
      const saved = await engine.saveAll();
      log(`  durable instances saved (${saved} with unsaved changes)`);
    },
  };
}

/** Whether `work` settled within `ms` (it is not cancelled either way). */
async function within(ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([work.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
