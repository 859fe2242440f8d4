/**
 * The fault-injection ledger: the embedded local runtime (tools/local-runtime/runtime.ts, the Event Hub
 * trigger semantics of the Functions host: batches per partition, the function's retry policy, the checkpoint
 * moving on after the last attempt even when it throws) with its Cosmos DB, Blob and Slack traffic going
 * through fault proxies. Each phase registers its devices at fault rate 0, sends its traffic at the phase's
 * rate, waits until the pipeline is done (or quiet, or out of time), stops the faults and gives the app time to
 * recover (redeliver), then counts what the stores hold.
 */
import { CosmosClient } from '@azure/cosmos';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { startFakeSlack } from '../../tools/fake-slack.js';
import { startFaultProxy, type FaultCounts, type FaultProxy } from '../../tools/fault-proxy.js';
import { startRuntime } from '../../tools/local-runtime/runtime.js';
import { AZURITE_DEV_KEY, localAppSettings, type LocalServices } from '../../tools/local-services.js';
import { probeApi, registerDevices, sendTraffic, type AppEndpoints, type ProbeResult } from './drive.js';
import { BlobLines, observe, type Observation, type StoreReaders } from './observe.js';
import { MAX_RECORD_BYTES, planPhase } from './plan.js';

export interface LedgerOptions {
  services: Omit<LocalServices, 'stop'>;
  /** Fault rates, percent. */
  ratesPercent: number[];
  devices: number;
  messagesPerDevice: number;
  /** Longest wait for the pipeline while faults are on, ms. */
  faultWindowMs: number;
  /** Longest wait for recovery (redelivery) after the faults stop, ms. */
  recoveryMs: number;
  seed: number;
  /** Extra app settings (e.g. a redelivery schedule once it exists). */
  settings?: Record<string, string>;
  log: (line: string) => void;
  /** Every line the runtime logs. */
  runtimeLog: (line: string) => void;
}

export interface LedgerRow extends Observation {
  ratePercent: number;
  refusedByGateway: number;
  http: ProbeResult;
  injected: Record<string, FaultCounts>;
  seconds: number;
  /** How each wait ended. */
  settled: { faults: string; recovery: string };
}

const ACCOUNT = 'devstoreaccount1';

/** local.settings.sample.json's values, as `npm start` uses them. */
function sampleSettings(): Record<string, string> {
  const sample = JSON.parse(readFileSync('local.settings.sample.json', 'utf8')) as {
    Values: Record<string, string>;
  };
  return sample.Values;
}

/** Watches the runtime log for Event Hub invocations and the retries they still have coming. */
class ActivityWatch {
  lastActivity = Date.now();
  retryDueBy = 0;

  onLine(line: string): void {
    if (!/^\[(ingestTelemetry|notifyAnomalies)\]/.test(line)) return;
    this.lastActivity = Date.now();
    // "[fn] attempt N failed: …": the runtime retries after 2 s · 2^(N-1) (exponential back-off).
    const failed = /attempt (\d+) failed/.exec(line);
    if (failed) this.retryDueBy = Math.max(this.retryDueBy, Date.now() + 2000 * 2 ** (Number(failed[1]) - 1));
  }

  quietFor(ms: number): boolean {
    const now = Date.now();
    return now - this.lastActivity > ms && now > this.retryDueBy + ms;
  }
}

type Proxies = Record<'cosmos' | 'blob' | 'slack', FaultProxy>;

/** Container and database names of one ledger run (fresh per run: runs never read each other's data). */
interface RunNames {
  runId: string;
  database: string;
  raw: string;
  dead: string;
}

/** A fault proxy in front of each dependency: Cosmos DB, Blob storage and (fake) Slack. */
async function startProxies(
  services: LedgerOptions['services'],
  seed: number,
  slackUrl: string,
): Promise<Proxies> {
  const common = { holdMs: 2000, slowMs: 500 };
  return {
    cosmos: await startFaultProxy({
      target: services.cosmosEndpoint,
      dependency: 'cosmos',
      seed,
      ...common,
      retryAfterMs: 100,
    }),
    blob: await startFaultProxy({
      target: new URL(services.blobEndpoint).origin,
      dependency: 'blob',
      seed: seed + 1,
      ...common,
    }),
    // A Slack answer lost after Slack posted the message cannot be told from a lost request: a resend is the
    // at-least-once price, not a duplicate the app could avoid. So Slack faults strike before Slack sees it.
    slack: await startFaultProxy({
      target: new URL(slackUrl).origin,
      dependency: 'slack',
      seed: seed + 2,
      ...common,
      retryAfterMs: 1000,
      afterUpstreamShare: 0,
    }),
  };
}

/** The app settings of the runtime under test: the local defaults, every dependency behind its fault proxy. */
function ledgerSettings(
  options: LedgerOptions,
  proxies: Proxies,
  slackUrl: string,
  names: RunNames,
): Record<string, string> {
  const { services } = options;
  const proxiedStorage =
    `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${AZURITE_DEV_KEY};` +
    `BlobEndpoint=${proxies.blob.origin}${new URL(services.blobEndpoint).pathname};`;
  return {
    // The documented local defaults first (hub names, consumer groups, and any setting added later).
    ...sampleSettings(),
    ...localAppSettings({ ...services, stop: () => Promise.resolve() }),
    CosmosDb__accountEndpoint: `${proxies.cosmos.origin}/`,
    ArchiveStorageConnectionString: proxiedStorage,
    CosmosDbDatabaseName: names.database,
    RawArchiveContainerName: names.raw,
    DeadLetterContainerName: names.dead,
    ProvisioningWorkContainerName: `faults-work-${names.runId}`,
    ProvisioningResultsContainerName: `faults-results-${names.runId}`,
    SlackWebhookUrl: `${proxies.slack.origin}${new URL(slackUrl).pathname}`,
    Alerts__CooldownMinutes: '10',
    // notifyAnomalies sends one message at most and never waits for the webhook's turn: what a burst or a Slack
    // fault leaves pending is the timer's. Shorter than the defaults so that a phase sees the outbox drain within
    // its recovery window: the timer every 2 s, 1 s first back-off, and a lease (> timeout + queue wait) that
    // expires within the window.
    Alerts__RedeliverySchedule: '*/2 * * * * *',
    Alerts__RedeliveryBackoffSeconds: '1',
    Alerts__DeliveryTimeoutSeconds: '5',
    Alerts__MaxQueueWaitSeconds: '5',
    Alerts__NotifyLeaseSeconds: '15',
    // Small enough that a `too-large` record still fits IoT Hub's 256 KB message limit at the gateway.
    Ingest__MaxRecordBytes: String(MAX_RECORD_BYTES),
    ...options.settings,
  };
}

/** Readers of what the stores hold, straight from the emulators (not through the proxies). */
function storeReaders(
  services: LedgerOptions['services'],
  names: RunNames,
  slackRequests: StoreReaders['slackRequests'],
) {
  const cosmos = new CosmosClient({
    endpoint: services.cosmosEndpoint,
    key: services.cosmosKey,
    agent: new Agent({ rejectUnauthorized: false }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  const blobs = new BlobServiceClient(
    services.blobEndpoint,
    new StorageSharedKeyCredential(ACCOUNT, AZURITE_DEV_KEY),
  );
  const readers: StoreReaders = {
    archive: blobs.getContainerClient(names.raw),
    deadLetters: blobs.getContainerClient(names.dead),
    state: cosmos.database(names.database).container('deviceState'),
    alarms: cosmos.database(names.database).container('alarms'),
    slackRequests,
  };
  return {
    readers,
    archive: new BlobLines(readers.archive),
    deadLetters: new BlobLines(readers.deadLetters),
  };
}

/** What every phase of one run works with. */
interface Ledger extends ReturnType<typeof storeReaders> {
  options: LedgerOptions;
  runId: string;
  app: AppEndpoints;
  proxies: Proxies;
  watch: ActivityWatch;
}

const setRate = (proxies: Proxies, percent: number) => {
  for (const p of Object.values(proxies)) p.setRate(percent / 100);
};

export async function runLedger(options: LedgerOptions): Promise<LedgerRow[]> {
  const { services } = options;
  const runId = randomUUID().slice(0, 6);
  const slack = await startFakeSlack();
  const proxies = await startProxies(services, options.seed, slack.url);
  const names: RunNames = {
    runId,
    database: `faults-${runId}`,
    raw: `faults-raw-${runId}`,
    dead: `faults-dead-${runId}`,
  };
  const watch = new ActivityWatch();
  const runtime = await startRuntime({
    port: 0,
    settings: ledgerSettings(options, proxies, slack.url, names),
    log: (line) => {
      watch.onLine(line);
      options.runtimeLog(line);
    },
  });
  const app: AppEndpoints = { apiBaseUrl: runtime.apiBaseUrl, origin: runtime.origin, hostName: 'localhost' };
  const ledger: Ledger = {
    options,
    runId,
    app,
    proxies,
    watch,
    ...storeReaders(services, names, () => slack.requests),
  };

  const rows: LedgerRow[] = [];
  try {
    // Warm-up at rate 0: every container and blob container exists before any fault is injected.
    await runPhase(ledger, -1, 0);
    for (const rate of options.ratesPercent) rows.push(await runPhase(ledger, rows.length, rate));
  } finally {
    await runtime.stop();
    await Promise.all(Object.values(proxies).map((p) => p.close()));
    await slack.close();
  }
  return rows;
}

/** One phase: devices registered fault-free, traffic at `rate` % faults, then recovery; what the stores hold. */
async function runPhase(ledger: Ledger, index: number, rate: number): Promise<LedgerRow> {
  const { options, app, proxies, readers, archive, deadLetters, watch } = ledger;
  const started = Date.now();
  const warmUp = index < 0;
  const plan = planPhase({
    prefix: warmUp ? `fw${ledger.runId}` : `f${index}r${rate}x${ledger.runId}`,
    devices: warmUp ? 2 : options.devices,
    messagesPerDevice: warmUp ? 5 : options.messagesPerDevice,
    startMs: Date.now() - options.messagesPerDevice * 60_000,
  });
  setRate(proxies, 0);
  const keys = await registerDevices(app, plan);
  for (const p of Object.values(proxies)) p.resetCounts();
  setRate(proxies, rate);
  options.log(
    `phase ${plan.prefix}: ${rate} % faults, ${plan.devices.length} devices × ${options.messagesPerDevice} messages`,
  );
  let done!: () => void;
  const trafficDone = new Promise<void>((resolve) => (done = resolve));
  const probing = probeApi(app, plan, trafficDone, 500);
  const sending = await sendTraffic(app, plan, keys, 8);
  const count = () => observe(readers, archive, deadLetters, plan, sending.sent);
  const complete = (o: Observation) =>
    o.unaccounted === 0 &&
    o.anomaliesInAlarms >= o.anomaliesIn &&
    o.pending === 0 &&
    o.alarmsNotified + o.undeliverable >= o.alarmsRecorded;
  const faults = await settle(watch, count, complete, warmUp ? 60_000 : options.faultWindowMs);
  done();
  const http = await probing;
  const injected = Object.fromEntries(Object.entries(proxies).map(([name, p]) => [name, p.counts()]));
  setRate(proxies, 0);
  const recovery = await settle(watch, count, complete, options.recoveryMs);
  const observation = await count();
  const row: LedgerRow = {
    ...observation,
    ratePercent: rate,
    refusedByGateway: Object.values(sending.refused).reduce((a, b) => a + b, 0),
    http,
    injected,
    seconds: Math.round((Date.now() - started) / 1000),
    settled: { faults, recovery },
  };
  options.log(`phase ${plan.prefix}: ${JSON.stringify({ ...row, injected: undefined })}`);
  return row;
}

/** Polls until the phase is complete, the pipeline has been quiet for a while, or `maxMs` passed. */
async function settle(
  watch: ActivityWatch,
  count: () => Promise<Observation>,
  complete: (o: Observation) => boolean,
  maxMs: number,
): Promise<string> {
  const end = Date.now() + maxMs;
  for (let polls = 0; polls < 10_000; polls++) {
    const o = await count();
    // Complete, and no invocation still has a retry coming (it would spill into the next phase).
    if (complete(o) && watch.quietFor(500)) return 'complete';
    // Quiet only counts once nothing waits for redelivery (a timer, not an Event Hub invocation, does that).
    if (o.pending === 0 && watch.quietFor(5000)) return 'quiet';
    if (Date.now() > end) return 'timed out';
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return 'poll limit';
}
