/**
 * `npm run reconcile [-- --fix]`: compares the identity store with the device catalog and lists identities
 * without a catalog entry (devices that connect but that the API does not know), catalog entries without an
 * identity, and the orphans recorded in the `reconciliation` container. Read-only unless `--fix` is given
 * (what it repairs, and how: src/provisioning/reconcile.ts). It uses the settings `npm start` uses (the sample,
 * local.settings.json, the local services on the ports given as to `npm start`, then the environment), so run
 * it next to a running `npm start`. Exits 1 when something diverges and was not fixed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, SETTING_NAMES } from '../src/config.js';
import { createAdapters } from '../src/infra/adapters.js';
import { TableIdentityStore } from '../src/infra/tables/table-identity-store.js';
import { reconcile, type ReconcileReport } from '../src/provisioning/reconcile.js';
import { localAppSettings, localEndpoints } from './local-services.js';

const { values: args } = parseArgs({
  options: {
    fix: { type: 'boolean', default: false },
    'blob-port': { type: 'string', default: process.env.LOCAL_BLOB_PORT ?? '10000' },
    'queue-port': { type: 'string', default: process.env.LOCAL_QUEUE_PORT ?? '10001' },
    'table-port': { type: 'string', default: process.env.LOCAL_TABLE_PORT ?? '10002' },
    'cosmos-port': { type: 'string', default: process.env.LOCAL_COSMOS_PORT ?? '8081' },
  },
});

const fromFile = (path: string) =>
  existsSync(path)
    ? ((JSON.parse(readFileSync(path, 'utf8')) as { Values?: Record<string, string> }).Values ?? {})
    : {};
const fromEnv = Object.fromEntries(
  SETTING_NAMES.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]])),
);
const settings = {
  ...fromFile('local.settings.sample.json'),
  ...fromFile('local.settings.json'),
  ...localAppSettings({
    ...localEndpoints({
      blob: args['blob-port'],
      queue: args['queue-port'],
      table: args['table-port'],
      cosmos: args['cosmos-port'],
    }),
    stop: () => Promise.resolve(),
  }),
  ...fromEnv,
};
const adapters = createAdapters(loadConfig(settings));

/** The report as lines a person reads (device ids only: never a key). */
function describeReport(report: ReconcileReport, fixed: boolean): string[] {
  const list = (ids: readonly string[]) => (ids.length === 0 ? 'none' : ids.join(', '));
  return [
    report.identitiesWithoutEntry === undefined
      ? 'identities without a catalog entry: not listed (the identity store is IoT Hub; only recorded orphans are checked)'
      : `identities without a catalog entry (${report.identitiesWithoutEntry.length}): ${list(report.identitiesWithoutEntry)}`,
    `catalog entries without an identity (${report.entriesWithoutIdentity.length}): ${list(report.entriesWithoutIdentity)}`,
    `orphans recorded in the reconciliation container (${report.orphans.length})${report.orphans.length ? ':' : ''}`,
    ...report.orphans.map((o) => `  ${o.deviceId}: ${o.reason} at ${o.at}; now ${o.now}`),
    ...(fixed ? ['fixed:', ...report.actions.map((a) => `  ${a}`)] : []),
  ];
}

try {
  const report = await reconcile(
    {
      identities: adapters.identities,
      catalog: adapters.catalog,
      orphans: adapters.orphans,
      ...(adapters.identities instanceof TableIdentityStore ? { identityListing: adapters.identities } : {}),
    },
    { fix: args.fix },
  );
  for (const line of describeReport(report, args.fix)) console.log(line);
  const diverging =
    (report.identitiesWithoutEntry?.length ?? 0) +
    report.entriesWithoutIdentity.length +
    report.orphans.filter((o) => o.now !== 'consistent' && o.now !== 'gone').length;
  if (diverging > 0 && !args.fix) {
    console.log('run `npm run reconcile -- --fix` to repair (identities keep their keys)');
    process.exitCode = 1;
  }
} catch (error) {
  console.error(`reconcile: ${error instanceof Error ? error.message : String(error)}`);
  console.error('Is `npm start` running? Give the same --table-port/--cosmos-port/--blob-port it uses.');
  process.exitCode = 2;
}
// The SDK clients keep connections open: end here.
process.exit(process.exitCode ?? 0);
