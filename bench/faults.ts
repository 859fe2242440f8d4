/**
 * `npm run faults`: the fault-injection ledger (docs/reliability.md). Runs the app in the embedded local runtime
 * with Cosmos DB, Blob and Slack behind fault proxies, drives telemetry and alarms through it at 0, 1, 10 and
 * 30 % injected faults, and prints what went in against what the stores hold.
 *
 *   node dist/bench/faults.js [--short] [--rates 0,10] [--devices 50] [--messages 20] [--seed 1] [--json file]
 *
 * `--short` is the quick version `npm test` runs. Local services: the ones named by FAULTS_SERVICES (JSON of
 * the LocalServices endpoints, as the test setup provides them), or fresh in-memory ones.
 * FAULTS_SETTINGS (JSON) adds app settings. The runtime's own log goes to FAULTS_LOG (default .local/faults.log).
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startLocalEventHubs } from '../tools/local-eventhubs/server.js';
import { localEventHubSettings, startLocalServices, type LocalServices } from '../tools/local-services.js';
import { formatInvariants, formatTable } from './ledger/report.js';
import { runLedger } from './ledger/run.js';

const { values: args } = parseArgs({
  options: {
    short: { type: 'boolean', default: false },
    rates: { type: 'string' },
    devices: { type: 'string' },
    messages: { type: 'string' },
    seed: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});

const numbers = (text: string) => text.split(',').map((s) => Number(s.trim()));
const ratesPercent = numbers(args.rates ?? (args.short ? '0,10' : '0,1,10,30'));
if (ratesPercent.some((r) => !Number.isFinite(r) || r < 0 || r > 100))
  throw new Error('--rates: percentages 0..100');
const devices = Number(args.devices ?? (args.short ? 6 : 50));
const messagesPerDevice = Number(args.messages ?? (args.short ? 6 : 20));

mkdirSync('.local', { recursive: true });
const logFile = process.env.FAULTS_LOG ?? '.local/faults.log';
writeFileSync(logFile, '');

const given = process.env.FAULTS_SERVICES;
let started: LocalServices | undefined;
const services: Omit<LocalServices, 'stop'> = given
  ? (JSON.parse(given) as Omit<LocalServices, 'stop'>)
  : (started = await startLocalServices({ inMemory: true }));

// An Event Hubs endpoint of this run's own: services shared with other test files would share their hubs.
const eventHubs = await startLocalEventHubs({ port: 0 });
const begun = Date.now();
try {
  const rows = await runLedger({
    services,
    ratesPercent,
    devices,
    messagesPerDevice,
    faultWindowMs: args.short ? 25_000 : 150_000,
    recoveryMs: args.short ? 30_000 : 60_000,
    seed: Number(args.seed),
    settings: {
      ...localEventHubSettings(eventHubs.connectionString()),
      ...(process.env.FAULTS_SETTINGS
        ? (JSON.parse(process.env.FAULTS_SETTINGS) as Record<string, string>)
        : {}),
    },
    log: (line) => {
      console.error(line);
    },
    runtimeLog: (line) => {
      appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
    },
  });
  console.log(
    `\nfault ledger: ${devices} devices × ${messagesPerDevice} messages per phase, seed ${args.seed}, ${Math.round((Date.now() - begun) / 1000)} s, Node ${process.version}\n`,
  );
  console.log(formatTable(rows));
  console.log(`\n${formatInvariants(rows)}`);
  if (args.json) writeFileSync(args.json, JSON.stringify(rows, null, 2));
} finally {
  await eventHubs.stop();
  await started?.stop();
}
// The app keeps timers (caches, Slack pacing); the ledger is done.
process.exit(0);
