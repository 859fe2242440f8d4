/**
 * The local IoT Hub side of `npm start`'s `func start` branch: what the embedded runtime serves besides the
 * app, for the app running in Core Tools. The device gateway (IoT Hub's device HTTPS API for telemetry) on its
 * own HTTP port, publishing to the local endpoint's IoT Hub events hub, and the local rule evaluator
 * (iothub-events/`asa` → anomalies, as Stream Analytics in Azure). It runs in `npm start`'s process with the
 * settings `func` is given, and authenticates devices with the identity store the app builds from them
 * (src/config.ts + src/infra/adapters.ts), so a device the app registered is the device the gateway knows.
 */
import { loadConfig } from '../../src/config.js';
import { createAdapters } from '../../src/infra/adapters.js';
import { deviceGateway } from './device-gateway.js';
import { readHostJson } from './host-json.js';
import { startHttpHost, type HttpHost } from './http-host.js';
import { within } from './http-io.js';
import { startIotHubFeed, type IotHubFeed, type LocalEventHubsEndpoint } from './hub-wiring.js';
import type { Logger } from './invocation-log.js';
import { describeTarget } from './event-hub-connection.js';

/** The gateway's default port: the one after the Functions host's 7071. */
export const DEFAULT_GATEWAY_PORT = 7072;

export interface IotHubSideOptions {
  /** The app settings `func start` runs with (local.settings.json's Values under this run's environment). */
  settings: Record<string, string | undefined>;
  /** The gateway's HTTP port (0 = a free one). */
  port: number;
  /** The local Event Hubs endpoint the services started: the gateway publishes to its IoT Hub events hub. */
  localEventHubs: LocalEventHubsEndpoint;
  log: Logger;
  /** How long a shutdown waits for open requests and the rule evaluator's batch (ms; default 10 000). */
  shutdownGraceMs?: number;
}

export interface IotHubSide {
  /** e.g. http://localhost:7072 */
  origin: string;
  /** The telemetry route devices post to. */
  gatewayUrl: string;
  /** The rule evaluator's sizes and the endpoint's retained events (bounded, like RuntimeMemory). */
  memory(): { hubEvents: number; rules: ReturnType<IotHubFeed['size']> };
  /** Stops accepting devices → stops the rule evaluator (its batch finishes) → closes the producers. Idempotent. */
  stop(): Promise<void>;
}

/** Only the set values: a setting func would not see as set is not set here either. */
const defined = (settings: Record<string, string | undefined>): Record<string, string> =>
  Object.fromEntries(
    Object.entries(settings).flatMap(([name, value]) => (value === undefined ? [] : [[name, value]])),
  );

/** Starts the gateway and the rule evaluator; resolves once the gateway listens. */
export async function startIotHubSide(options: IotHubSideOptions): Promise<IotHubSide> {
  const { log } = options;
  const settings = defined(options.settings);
  // The app's own config and adapters: an invalid setting fails here with the message the app would give.
  const { identities } = createAdapters(loadConfig(settings));
  const feed = await startIotHubFeed({
    settings,
    maxBatch: readHostJson().maxEventBatchSize,
    localEventHubs: options.localEventHubs,
    log,
  });
  if (feed.real)
    log(
      `IoT Hub events: the rule evaluator consumes ${describeTarget(feed.iotHub)} (IotHubEventsConnection); the device gateway publishes to the local endpoint`,
    );
  /** Aborted when the side stops (ends any open request that waits). */
  const stopping = new AbortController();
  let host: HttpHost;
  try {
    host = await startHttpHost(options.port, {
      handlers: deviceGateway({
        identities,
        hostName: settings.IotHubHostName ?? 'localhost',
        telemetry: feed.telemetry,
        log,
        stopping: stopping.signal,
        directMethods: false,
      }),
      // No app here: every other path is 404.
      routes: [],
      routePrefix: 'api',
      maxApiBody: 0,
      durableClientData: () => undefined,
      log,
    });
  } catch (error) {
    await feed.stopConsumer();
    await feed.close();
    throw error;
  }
  const graceMs = options.shutdownGraceMs ?? 10_000;
  let stopped: Promise<void> | undefined;
  return {
    origin: host.origin,
    gatewayUrl: `${host.origin}/devices/{id}/messages/events`,
    memory: () => ({ hubEvents: options.localEventHubs.retained(), rules: feed.size() }),
    stop: () => (stopped ??= stopSide(host, stopping, feed, graceMs, log)),
  };
}

/** The side's part of the ordered shutdown; each step is logged. */
async function stopSide(
  host: HttpHost,
  stopping: AbortController,
  feed: IotHubFeed,
  graceMs: number,
  log: Logger,
): Promise<void> {
  const closed = new Promise<void>((resolve) =>
    host.server.close(() => {
      resolve();
    }),
  );
  host.server.closeIdleConnections();
  stopping.abort();
  log('  device gateway stopped accepting messages');
  // A message being published finishes (its device gets its answer) before the producer closes.
  const finished = await within(graceMs, Promise.all([closed, feed.stopConsumer()]));
  const open = host.openRequests();
  host.server.closeAllConnections();
  if (!finished) log(`  ${open} gateway requests still open after ${graceMs} ms: stopped without them`);
  log('  rule evaluator stopped');
  await feed.close();
  log('  Event Hubs producers of the gateway and the rule evaluator closed');
}
