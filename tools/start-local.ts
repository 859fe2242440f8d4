/**
 * `npm start`: starts the embedded services (Azurite with data under .local/, the local Cosmos DB server, the
 * local Event Hubs endpoint on AMQP port 5672), then
 * runs `func start` against them when Azure Functions Core Tools are on PATH (beside it, in this process, the
 * device gateway on --gateway-port and the local rule evaluator: tools/local-runtime/iothub-side.ts), or else
 * the embedded local runtime (tools/local-runtime/runtime.ts), and prints where everything is. Ctrl-C (SIGINT, SIGTERM, SIGHUP) runs one
 * ordered shutdown (tools/shutdown-signals.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { SETTING_NAMES } from '../src/config.js';
import { funcSettings, startFunc } from './func-start.js';
import { makeLogger, parseLogLevel } from './local-runtime/invocation-log.js';
import { formatError } from './local-runtime/log-format.js';
import { generateFunctionKeys } from './local-runtime/function-keys.js';
import { realIotHubSettings } from './local-runtime/event-hub-connection.js';
import { DEFAULT_GATEWAY_PORT, startIotHubSide, type IotHubSide } from './local-runtime/iothub-side.js';
import { startRuntime, type Runtime } from './local-runtime/runtime.js';
import { localAppSettings, startLocalServices, type LocalServices } from './local-services.js';
import { handleShutdownSignals } from './shutdown-signals.js';

const { values: args } = parseArgs({
  options: {
    'in-memory': { type: 'boolean', default: false },
    'blob-port': { type: 'string', default: process.env.LOCAL_BLOB_PORT ?? '10000' },
    'queue-port': { type: 'string', default: process.env.LOCAL_QUEUE_PORT ?? '10001' },
    'table-port': { type: 'string', default: process.env.LOCAL_TABLE_PORT ?? '10002' },
    'cosmos-port': { type: 'string', default: process.env.LOCAL_COSMOS_PORT ?? '8081' },
    'eventhubs-port': { type: 'string', default: process.env.LOCAL_EVENTHUBS_PORT ?? '5672' },
    'data-dir': { type: 'string', default: process.env.LOCAL_DATA_DIR ?? '.local' },
    'http-port': { type: 'string', default: process.env.LOCAL_HTTP_PORT ?? '7071' },
    /** The device gateway's HTTP port beside `func start` (the embedded runtime serves it on --http-port). */
    'gateway-port': {
      type: 'string',
      default: process.env.LOCAL_GATEWAY_PORT ?? String(DEFAULT_GATEWAY_PORT),
    },
    embedded: { type: 'boolean', default: false },
    /** Enforce function keys on non-anonymous routes, as Azure does (a random key per run, printed). */
    keys: { type: 'boolean', default: process.env.LOCAL_FUNCTION_KEYS === 'true' },
    'log-level': { type: 'string', default: process.env.LOG_LEVEL ?? 'info' },
    'shutdown-grace-seconds': {
      type: 'string',
      default: process.env.LOCAL_SHUTDOWN_GRACE_SECONDS ?? '10',
    },
  },
});

let log: ReturnType<typeof makeLogger>;
try {
  log = makeLogger(parseLogLevel(args['log-level']), (line, level) => {
    if (level === 'error' || level === 'warn') console.error(line);
    else console.log(line);
  });
} catch (error) {
  console.error(`npm start: --log-level: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

const port = (name: string, value: string | undefined): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`--${name} must be a port number, got '${value}'`);
  return n;
};

// Checked before anything starts: a bad value must not leave services running.
const gatewayPort = port('gateway-port', args['gateway-port']);
const dataDir = resolve(args['data-dir']);
const azuriteDir = resolve(dataDir, 'azurite');
if (!args['in-memory']) mkdirSync(azuriteDir, { recursive: true });

let runtime: Promise<Runtime | undefined> = Promise.resolve(undefined);
/** Beside `func start`: the device gateway and the rule evaluator. */
let side: Promise<IotHubSide | undefined> = Promise.resolve(undefined);
/** What has started, for a forced exit (which cannot wait for a promise). */
const started: { services?: LocalServices } = {};
let func: ReturnType<typeof startFunc> | undefined;
/** Set once the shutdown began: func is not started after that. */
const stopping = { begun: false };
// Installed before anything starts: a Ctrl-C during start-up still stops what did start, in order.
const shutdown = handleShutdownSignals({
  log: (line) => {
    log(line);
  },
  exit: (code) => {
    if (code !== 0) started.services?.abandon();
    process.exit(code);
  },
  // The order matters: nothing new comes in, what runs finishes, durable state is saved, then the stores stop.
  steps: async (reason) => {
    stopping.begun = true;
    await (await runtime.catch(() => undefined))?.stop();
    await (await side.catch(() => undefined))?.stop();
    if (func && func.exitCode === null && func.signalCode === null) {
      // A terminal's Ctrl-C reached func too (same process group); any other signal is forwarded.
      if (reason !== 'SIGINT') func.kill('SIGTERM');
      await new Promise((resolve) => func?.once('exit', resolve));
      log('  func start exited');
    }
    await (
      await servicesStarting.catch(() => undefined)
    )?.stop((step) => {
      log(`  ${step}`);
    });
  },
});

const servicesStarting = startLocalServices({
  inMemory: args['in-memory'],
  location: azuriteDir,
  dataDir,
  log: (message) => {
    console.error(message);
  },
  blobPort: port('blob-port', args['blob-port']),
  queuePort: port('queue-port', args['queue-port']),
  tablePort: port('table-port', args['table-port']),
  cosmosPort: port('cosmos-port', args['cosmos-port']),
  eventHubsPort: port('eventhubs-port', args['eventhubs-port']),
}).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`npm start: ${message}`);
  if (/\bport\b/i.test(message))
    console.error(
      'Choose other ports with --blob-port, --queue-port, --table-port, --cosmos-port, --eventhubs-port (or LOCAL_*_PORT).',
    );
  process.exit(1);
});
const services = await servicesStarting;
started.services = services;
const settings = localAppSettings(services);
const stopServices = async (code: number) => {
  await services.stop();
  process.exit(code);
};
// Azurite gone (killed, crashed): nothing can be stored any more, so say so and stop (the message is logged).
void services.died.then(() => stopServices(1));

/** One line from GET /api/health: each dependency with its status and latency (never where it is). */
async function healthSummary(apiBaseUrl: string): Promise<string> {
  try {
    const response = await fetch(`${apiBaseUrl}/health`, { signal: AbortSignal.timeout(10_000) });
    const report = (await response.json()) as {
      status: string;
      dependencies: { name: string; status: string; latencyMs: number }[];
    };
    const parts = report.dependencies.map((d) => `${d.name} ${d.status} ${d.latencyMs} ms`);
    return `${report.status} (${parts.join(', ')})`;
  } catch (error) {
    return `unknown (${error instanceof Error ? error.message : String(error)})`;
  }
}

/** The HTTP port: a free one when 0 is asked for, known before the app starts (PublicApiBaseUrl needs it). */
async function httpPort(asked: number): Promise<number> {
  if (asked !== 0) return asked;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
const apiPort = await httpPort(port('http-port', args['http-port']));
const hostJson = JSON.parse(readFileSync(new URL('../../host.json', import.meta.url), 'utf8')) as {
  extensions?: { http?: { routePrefix?: string } };
};
/** The sample's PublicApiBaseUrl: a value equal to it was copied, not chosen. */
const SAMPLE_PUBLIC_API_BASE_URL = 'http://localhost:7071/api';
const fromFile = (path: string) =>
  existsSync(path)
    ? ((JSON.parse(readFileSync(path, 'utf8')) as { Values?: Record<string, string> }).Values ?? {})
    : {};
const chosenBaseUrl = [process.env.PublicApiBaseUrl, fromFile('local.settings.json').PublicApiBaseUrl].find(
  (value) => value !== undefined && value !== '' && value !== SAMPLE_PUBLIC_API_BASE_URL,
);
// Links in alerts follow the port of this run unless a base URL was set explicitly.
const publicApiBaseUrl =
  chosenBaseUrl ?? `http://localhost:${apiPort}/${hostJson.extensions?.http?.routePrefix ?? 'api'}`;

const hasFunc = !args.embedded && spawnSync('func', ['--version'], { stdio: 'ignore' }).status === 0;
const describeServices = () =>
  [
    `  Azurite Blob      ${services.blobEndpoint}`,
    `  Azurite Queue     ${services.queueEndpoint}`,
    `  Azurite Table     ${services.tableEndpoint}`,
    `  Cosmos DB         ${services.cosmosEndpoint} (self-signed TLS)`,
    // The endpoint and key name only: the key is in local.settings.json (func) or the app settings.
    `  Event Hubs        amqp://localhost:${services.eventHubsPort} (AMQP 1.0, UseDevelopmentEmulator=true; hubs iothub-events, anomalies, replay)`,
    `  data folder       ${args['in-memory'] ? '(in memory)' : dataDir}`,
  ].join('\n');

if (hasFunc) {
  const { env, effective } = funcSettings({
    runSettings: { ...settings, ...(chosenBaseUrl ? {} : { PublicApiBaseUrl: publicApiBaseUrl }) },
    log: (line) => {
      log(line);
    },
  });
  log(`embedded services are up\n${describeServices()}`);
  side = startIotHubSide({
    settings: effective,
    port: gatewayPort,
    localEventHubs: {
      connectionString: services.eventHubsConnectionString,
      retained: services.eventHubsRetained ?? (() => 0),
    },
    log,
    shutdownGraceMs: Number(args['shutdown-grace-seconds']) * 1000 || 10_000,
  }).catch(async (error: unknown) => {
    const message = formatError(error);
    console.error(`npm start: the device gateway did not start: ${message}`);
    if (/EADDRINUSE|\bport\b/i.test(message))
      console.error('Choose another gateway port with --gateway-port (or LOCAL_GATEWAY_PORT).');
    await stopServices(1);
    return undefined;
  });
  const ready = await side;
  if (ready && !stopping.begun) {
    log(`  API base URL      http://localhost:${apiPort}/api (func start)
  device gateway    ${ready.gatewayUrl} (telemetry to iothub-events; the rule evaluator writes anomalies)
  direct methods    to local devices need the embedded runtime (npm start -- --embedded)`);
    func = startFunc({ httpPort: apiPort, env, enableAuth: args.keys });
    func.on('exit', (code) => {
      log(`func start exited with code ${code ?? 'none'}`);
      shutdown.begin('func exited');
    });
  }
} else {
  log('Azure Functions Core Tools (func) not found: running the embedded local runtime instead.');
  // Setting names given in the environment win, so a run can be configured without editing files.
  const fromEnv = Object.fromEntries(
    SETTING_NAMES.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]])),
  );
  const keys = args.keys ? generateFunctionKeys() : undefined;
  const appSettings = {
    ...fromFile('local.settings.sample.json'),
    ...fromFile('local.settings.json'),
    PublicApiBaseUrl: publicApiBaseUrl,
    // No identity-registry throttle locally.
    Provisioning__RegistryOpsPerMinute: '100000',
    Jobs__PollIntervalSeconds: '2',
    ...settings,
    ...realIotHubSettings({ ...fromFile('local.settings.json'), ...fromEnv }),
    ...fromEnv,
  };
  runtime = startRuntime({
    settings: appSettings,
    port: apiPort,
    localEventHubs: {
      connectionString: services.eventHubsConnectionString,
      retained: services.eventHubsRetained ?? (() => 0),
    },
    log,
    shutdownGraceMs: Number(args['shutdown-grace-seconds']) * 1000 || 10_000,
    ...(keys ? { keys } : {}),
  }).catch(async (error: unknown) => {
    console.error(`npm start: ${error instanceof Error ? error.message : String(error)}`);
    console.error('Choose another HTTP port with --http-port (or LOCAL_HTTP_PORT).');
    await stopServices(1);
    return undefined;
  });
  const ready = await runtime;
  if (ready) {
    log(`
backend is up (embedded local runtime)
  API ready in ${Math.round(performance.now())} ms
  health            ${await healthSummary(ready.apiBaseUrl)}
  API base URL      ${ready.apiBaseUrl}
  device gateway    ${ready.gatewayUrl}
  OpenAPI           ${ready.apiBaseUrl}/openapi.json
  function keys     ${keys ? `enforced: x-functions-key: ${keys.functionKey} (or ?code=; this run only)` : 'not checked (npm start -- --keys checks them as Azure does)'}
${describeServices()}
Ctrl-C stops everything.`);
  }
}
