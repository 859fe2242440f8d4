/**
 * The embedded local runtime: what `npm start` runs when Azure Functions Core Tools are not installed. It
 * loads the app through its real entry point with a local `@azure/functions-core` provider, so every
 * `app.*` / `df.app.*` registration is served with its binding metadata:
 *
 * - HTTP triggers at `http://localhost:{port}/{routePrefix}/…` (route templates, methods, host.json prefix);
 * - Event Hub triggers consuming with @azure/event-hubs (the local AMQP endpoint, or a real IoT Hub's built-in
 *   endpoint), with blob checkpoints in AzureWebJobsStorage, batches of `maxEventBatchSize`, the IoT Hub
 *   built-in endpoint's trigger metadata, at-least-once with the function's retry policy;
 * - a device gateway `POST /devices/{id}/messages/events` (IoT Hub's device HTTPS API, SAS-authenticated
 *   against the identity store) publishing to the IoT Hub events hub with an `EventHubProducerClient`;
 * - the local rule evaluator reading those events and sending anomalies to the anomalies hub;
 * - Durable Functions: the local durable engine, with the management HTTP API the durable client and the
 *   status URLs use.
 */
import { storageTableClient } from '../../src/infra/adapters.js';
import { localDeviceConnections } from '../../src/infra/local/local-device-connections.js';
import { loadApp, registrationsOf } from './app-loader.js';
import { assertBindingSettings } from './binding-expressions.js';
import { assertRetryPolicies } from './retry-policy.js';
import { deviceGateway } from './device-gateway.js';
import { durableApi, durableClientData } from './durable-api.js';
import { DurableEngine, type ActivityHandler } from './durable-engine.js';
import { describeFunctions } from './function-list.js';
import { readHostJson } from './host-json.js';
import type { FunctionKeys } from './function-keys.js';
import { appRoutes, startHttpHost, type HttpHost } from './http-host.js';
import { within } from './http-io.js';
import { startHubs, type HubWiring, type LocalEventHubsEndpoint } from './hub-wiring.js';
import { InvocationTracker, type Logger } from './invocation-log.js';
import { triggerBinding, type Registration } from './event-hubs.js';
import { TableInstanceStore } from './table-instance-store.js';
import { startTimers } from './timers.js';

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
  /**
   * The local Event Hubs endpoint the services started: the device gateway publishes to it, and RuntimeMemory
   * reports what it keeps. Without it the gateway publishes to `IotHubEventsConnection`.
   */
  localEventHubs?: LocalEventHubsEndpoint;
  /** Function keys to enforce on non-anonymous HTTP functions, as the host does (none: not checked). */
  keys?: FunctionKeys;
}

export interface Runtime {
  /** e.g. http://localhost:7071 */
  origin: string;
  apiBaseUrl: string;
  gatewayUrl: string;
  /** What the runtime keeps in memory that grows with traffic (the soak benchmark watches it stay bounded). */
  memory(): RuntimeMemory;
  /**
   * The runtime's part of the ordered shutdown: stop accepting requests → stop triggers (Event Hub batches
   * being handled finish and checkpoint) → let in-flight invocations finish (bounded by shutdownGraceMs) →
   * close the Event Hubs producers → save durable instances. Each step is logged.
   */
  stop(): Promise<void>;
}

export interface RuntimeMemory {
  /** Events the local Event Hubs endpoint keeps in memory (bounded by its retention; 0 without one). */
  hubEvents: number;
  /** The local rule evaluator's devices, readings and emitted-anomaly keys. */
  rules: { devices: number; points: number; emitted: number };
  /** Direct-method requests waiting for a device. */
  methodRequests: number;
}

/** The durable engine on a real clock, its instances kept in the Functions host's storage account. */
async function startDurableEngine(
  byType: (type: string) => Registration[],
  settings: Record<string, string>,
  log: Logger,
): Promise<DurableEngine> {
  const engine = new DurableEngine({
    orchestrators: new Map(byType('orchestrationTrigger').map((r) => [r.metadata.name, r.callback])),
    activities: new Map(
      byType('activityTrigger').map((r) => [r.metadata.name, r.callback as ActivityHandler]),
    ),
    clock: 'real',
    log,
    // Instances survive a restart: snapshots (history included) in the Functions host's storage account.
    store: new TableInstanceStore(
      storageTableClient(settings.AzureWebJobsStorage ?? '', 'DurableInstances'),
      log,
    ),
  });
  const restored = await engine.restore();
  if (restored > 0) log(`durable: ${restored} instances restored from Azurite`);
  return engine;
}

/** What the ordered shutdown stops, in order. */
interface RuntimeParts {
  host: HttpHost;
  stopping: AbortController;
  hubs: HubWiring;
  timers: ReturnType<typeof startTimers>;
  invocations: InvocationTracker;
  engine: DurableEngine;
  graceMs: number;
  log: Logger;
}

/** The runtime's part of the ordered shutdown (see Runtime.stop); each step is logged. */
async function stopRuntime(parts: RuntimeParts): Promise<void> {
  const { host, hubs, timers, invocations, graceMs, log } = parts;
  const closed = new Promise<void>((resolve) =>
    host.server.close(() => {
      resolve();
    }),
  );
  host.server.closeIdleConnections();
  parts.stopping.abort();
  log('  stopped accepting requests');
  const triggersStopped = Promise.all([hubs.stopConsumers(), timers.stop()]);
  parts.engine.stopDispatching();
  log(
    `  stopping triggers: ${hubs.consumers} Event Hub consumers, ${timers.count} timers, durable orchestrations and activities`,
  );
  const running = invocations.inFlight;
  const finished = await within(graceMs, Promise.all([triggersStopped, invocations.idle(), closed]));
  const [left, open] = [invocations.inFlight, host.openRequests()];
  host.server.closeAllConnections();
  log(
    finished
      ? `  in-flight invocations finished (${running} were running)`
      : `  ${left} invocations and ${open} open HTTP requests still running after ${graceMs} ms: stopped without them`,
  );
  await hubs.close();
  log('  Event Hubs producers closed');
  const saved = await parts.engine.saveAll();
  log(`  durable instances saved (${saved} with unsaved changes)`);
}

/** Loads the app, starts every trigger, and serves HTTP; resolves when the API is ready. */
export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { settings, log } = options;
  Object.assign(process.env, settings);
  const { app, registrations } = await loadApp(options.functionsCore);
  // The host indexes every function before it starts any: an unresolved %Setting% stops the start here.
  assertBindingSettings(registrations, settings);
  const hostJson = readHostJson();
  // So does a retry policy the host refuses (it would otherwise retry with no delay, for ever with -1).
  assertRetryPolicies(registrations, hostJson.retry);
  const invocations = new InvocationTracker();
  const byType = registrationsOf(registrations, invocations, log);
  const engine = await startDurableEngine(byType, settings, log);
  const triggers = byType('eventHubTrigger');
  const hubs = await startHubs({
    settings,
    triggers,
    maxBatch: hostJson.maxEventBatchSize,
    hostRetry: hostJson.retry,
    ...(options.localEventHubs ? { localEventHubs: options.localEventHubs } : {}),
    log,
  });
  const timers = startTimers(byType('timerTrigger'), { settings, log });
  const routes = appRoutes(byType('httpTrigger'));
  /** Aborted when the runtime stops (ends the devices' long-polls). */
  const stopping = new AbortController();
  let origin = '';
  let host: HttpHost;
  try {
    host = await startHttpHost(options.port, {
      handlers: [
        durableApi(engine, options.keys),
        // The device gateway authenticates with the app's own identity store (one adapter set per process).
        ...deviceGateway({
          identities: app.adapters.identities,
          hostName: settings.IotHubHostName ?? 'localhost',
          telemetry: hubs.telemetry,
          log,
          stopping: stopping.signal,
        }),
      ],
      routes,
      routePrefix: hostJson.routePrefix,
      // The host reads a body before the function sees it; stop at the largest limit any route has.
      maxApiBody: Math.max(app.config.http.maxBodyBytes, app.config.http.maxBulkBodyBytes),
      durableClientData: () => durableClientData(origin, hostJson.taskHub, options.keys?.masterKey),
      ...(options.keys ? { keys: options.keys } : {}),
      log,
    });
  } catch (error) {
    // The port is taken (or alike): what started must not keep the process alive.
    await Promise.all([hubs.stopConsumers(), timers.stop()]);
    await hubs.close();
    engine.stopDispatching();
    throw error;
  }
  origin = host.origin;
  // The durable client rewrites management URLs to localhost:7071 unless it knows the host name.
  process.env.WEBSITE_HOSTNAME = origin.slice('http://'.length);
  const count = (type: string) => registrations.filter((r) => triggerBinding(r)?.type === type).length;
  log(
    `${registrations.length} functions loaded: ${routes.length} HTTP, ${triggers.length} Event Hub, ${timers.count} timer, ${count('orchestrationTrigger')} orchestrations, ${count('activityTrigger')} activities`,
  );
  log(describeFunctions(registrations, origin, hostJson.routePrefix));
  const graceMs = options.shutdownGraceMs ?? 10_000;
  return {
    origin,
    apiBaseUrl: `${origin}/${hostJson.routePrefix}`,
    gatewayUrl: `${origin}/devices/{id}/messages/events`,
    memory: () => ({ ...hubs.memory(), methodRequests: localDeviceConnections.size().pending }),
    stop: () => stopRuntime({ host, stopping, hubs, timers, invocations, engine, graceMs, log }),
  };
}
