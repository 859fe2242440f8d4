/**
 * `npm start`: starts the embedded services (Azurite with data under .local/, the local Cosmos DB server), then
 * runs `func start` against them when Azure Functions Core Tools are on PATH, or else the embedded local runtime
 * (tools/local-runtime/runtime.ts), and prints where everything is.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SETTING_NAMES } from '../src/config.js';
import { startRuntime } from './local-runtime/runtime.js';
import { localAppSettings, startLocalServices } from './local-services.js';

const { values: args } = parseArgs({
  options: {
    'in-memory': { type: 'boolean', default: false },
    'blob-port': { type: 'string', default: process.env.LOCAL_BLOB_PORT ?? '10000' },
    'queue-port': { type: 'string', default: process.env.LOCAL_QUEUE_PORT ?? '10001' },
    'table-port': { type: 'string', default: process.env.LOCAL_TABLE_PORT ?? '10002' },
    'cosmos-port': { type: 'string', default: process.env.LOCAL_COSMOS_PORT ?? '8081' },
    'data-dir': { type: 'string', default: process.env.LOCAL_DATA_DIR ?? '.local' },
    'http-port': { type: 'string', default: process.env.LOCAL_HTTP_PORT ?? '7071' },
    embedded: { type: 'boolean', default: false },
  },
});

const port = (name: string, value: string | undefined): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`--${name} must be a port number, got '${value}'`);
  return n;
};

const dataDir = resolve(args['data-dir']);
const azuriteDir = resolve(dataDir, 'azurite');
if (!args['in-memory']) mkdirSync(azuriteDir, { recursive: true });

const services = await startLocalServices({
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
}).catch((error: unknown) => {
  console.error(`npm start: ${error instanceof Error ? error.message : String(error)}`);
  console.error(
    'Choose other ports with --blob-port, --queue-port, --table-port, --cosmos-port (or LOCAL_*_PORT).',
  );
  process.exit(1);
});

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

const hasFunc = !args.embedded && spawnSync('func', ['--version'], { stdio: 'ignore' }).status === 0;
const describeServices = () =>
  [
    `  Azurite Blob      ${services.blobEndpoint}`,
    `  Azurite Queue     ${services.queueEndpoint}`,
    `  Azurite Table     ${services.tableEndpoint}`,
    `  Cosmos DB         ${services.cosmosEndpoint} (self-signed TLS)`,
    `  data folder       ${args['in-memory'] ? '(in memory)' : dataDir}`,
  ].join('\n');

if (hasFunc) {
  // local.settings.json is what `func start` reads; create it from the sample, pointed at these services.
  if (!existsSync('local.settings.json')) {
    const sample = JSON.parse(readFileSync('local.settings.sample.json', 'utf8')) as {
      Values: Record<string, string>;
    };
    writeFileSync(
      'local.settings.json',
      JSON.stringify({ ...sample, Values: { ...sample.Values, ...settings } }, null, 2),
    );
    console.log('wrote local.settings.json from local.settings.sample.json');
  }
  console.log(
    `embedded services are up\n${describeServices()}\n  API base URL      http://localhost:7071/api (func start)`,
  );
  process.on('SIGINT', () => void stopServices(0));
  process.on('SIGTERM', () => void stopServices(0));
  const func = spawn('func', ['start'], { stdio: 'inherit', env: { ...process.env, ...settings } });
  func.on('exit', (code) => void stopServices(code ?? 0));
} else {
  console.log('Azure Functions Core Tools (func) not found: running the embedded local runtime instead.');
  const fromFile = (path: string) =>
    existsSync(path)
      ? ((JSON.parse(readFileSync(path, 'utf8')) as { Values?: Record<string, string> }).Values ?? {})
      : {};
  // Setting names given in the environment win, so a run can be configured without editing files.
  const fromEnv = Object.fromEntries(
    SETTING_NAMES.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]])),
  );
  const runtime = await startRuntime({
    settings: {
      ...fromFile('local.settings.sample.json'),
      ...fromFile('local.settings.json'),
      // The embedded Event Hubs are in-process: these only name them.
      IotHubEventsConnection: 'Endpoint=sb://localhost/;SharedAccessKeyName=local;SharedAccessKey=local',
      IotHubEventHubName: 'iothub-events',
      IngestConsumerGroup: 'ingest',
      // No identity-registry throttle locally.
      Provisioning__RegistryOpsPerMinute: '100000',
      Jobs__PollIntervalSeconds: '2',
      ...settings,
      ...fromEnv,
    },
    port: port('http-port', args['http-port']),
    ...(args['in-memory'] ? {} : { hubsFolder: resolve(dataDir, 'hubs') }),
    log: (message) => {
      console.log(message);
    },
  }).catch((error: unknown) => {
    console.error(`npm start: ${error instanceof Error ? error.message : String(error)}`);
    console.error('Choose another HTTP port with --http-port (or LOCAL_HTTP_PORT).');
    return stopServices(1);
  });
  console.log(`
backend is up (embedded local runtime)
  health            ${await healthSummary(runtime.apiBaseUrl)}
  API base URL      ${runtime.apiBaseUrl}
  device gateway    ${runtime.gatewayUrl}
  OpenAPI           ${runtime.apiBaseUrl}/openapi.json
${describeServices()}
Ctrl-C stops everything.`);
  const stop = async () => {
    await runtime.stop();
    await stopServices(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}
