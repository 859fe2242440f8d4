/**
 * `npm start`: starts the embedded services (Azurite with data under .local/, the local Cosmos DB server),
 * prints where everything is, then runs `func start` against them when Azure Functions Core Tools are on PATH.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { localAppSettings, startLocalServices } from './local-services.js';

const { values: args } = parseArgs({
  options: {
    'in-memory': { type: 'boolean', default: false },
    'blob-port': { type: 'string', default: process.env.LOCAL_BLOB_PORT ?? '10000' },
    'queue-port': { type: 'string', default: process.env.LOCAL_QUEUE_PORT ?? '10001' },
    'table-port': { type: 'string', default: process.env.LOCAL_TABLE_PORT ?? '10002' },
    'cosmos-port': { type: 'string', default: process.env.LOCAL_COSMOS_PORT ?? '8081' },
    'data-dir': { type: 'string', default: process.env.LOCAL_DATA_DIR ?? '.local' },
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

console.log(`
embedded services are up
  Azurite Blob      ${services.blobEndpoint}
  Azurite Queue     ${services.queueEndpoint}
  Azurite Table     ${services.tableEndpoint}
  Cosmos DB         ${services.cosmosEndpoint} (self-signed TLS, data in memory only)
  data folder       ${args['in-memory'] ? '(in memory)' : azuriteDir}
  API base URL      http://localhost:7071/api (when the Functions host runs)
`);

const stop = async (code: number) => {
  await services.stop();
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

const hasFunc = spawnSync('func', ['--version'], { stdio: 'ignore' }).status === 0;
if (hasFunc) {
  const func = spawn('func', ['start'], { stdio: 'inherit', env: { ...process.env, ...settings } });
  func.on('exit', (code) => void stop(code ?? 0));
} else {
  console.log(
    'Azure Functions Core Tools (func) not found: the emulators keep running (Ctrl-C stops them); ' +
      'the embedded runtime that serves the functions without func is not built yet (see README).',
  );
}
