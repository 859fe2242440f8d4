/**
 * The soak benchmark's run (bench/soak.ts is its command line; a test runs a short one): the embedded local
 * runtime in this process, the device simulator as a child process at `devices` × `perDeviceRate` messages/s
 * for `minutes` (with the simulator's occasional anomaly bursts: alarms open and repeat at a steady rate), and
 * this process's RSS sampled at checkpoints (soakCheckpoints): after a warm-up of 5 minutes (the rule evaluator's
 * window fills) and then every 5 minutes; shorter runs at 1/6, 1/2 and the end. Growth after warm-up compares
 * the end with the first checkpoint. Each checkpoint also gives the Cosmos DB documents' count and size per
 * container, so a document that grows shows.
 */
import { CosmosClient } from '@azure/cosmos';
import { spawn } from 'node:child_process';
import { Agent } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { EventHubConsumerClient } from '@azure/event-hubs';
import { checkpointStoreFor, resolveEventHubTarget } from '../tools/local-runtime/event-hub-connection.js';
import { startRuntime, type RuntimeMemory } from '../tools/local-runtime/runtime.js';
import { localAppSettings, type LocalServices } from '../tools/local-services.js';

export interface SoakOptions {
  services: Omit<LocalServices, 'stop' | 'died' | 'abandon'>;
  minutes: number;
  devices: number;
  /** Messages per second per device (the simulator's --rate is the total: devices × this). */
  perDeviceRate: number;
  /** The compiled simulator (dist/tools/simulate.js). */
  simulator: string;
  /** The runtime's `@azure/functions-core` provider (default: the compiled one beside the runtime). */
  functionsCore?: string;
  /** App settings added last (e.g. a database of its own). */
  settings?: Record<string, string>;
  log: (line: string) => void;
}

export interface SoakCheckpoint {
  /** Minutes into the run. */
  minute: number;
  rssBytes: number;
  heapUsedBytes: number;
  runtime: RuntimeMemory;
  /** Per Cosmos DB container: documents, their total and largest JSON size (bytes). */
  documents: Record<string, { count: number; bytes: number; largest: number }>;
}

export interface SoakReport {
  checkpoints: SoakCheckpoint[];
  /** (RSS at the end − RSS at the first checkpoint) / RSS at the first checkpoint. */
  growthAfterWarmUp: number;
  /** The same for the V8 heap after a GC (with --expose-gc): what the runtime really keeps, without allocator noise. */
  heapGrowthAfterWarmUp: number;
  sent: number;
  refused: number;
  /** Refusals by cause as the simulator counted them: the HTTP status, or `network`. */
  refusedBy: Record<string, number>;
  /** What the runtime still kept once the simulator stopped and ingest caught up. */
  drained: RuntimeMemory;
  /** Events of the IoT Hub events hub that ingest had not checkpointed when the run ended (0 = caught up). */
  ingestBacklog: number;
  /** Whether the warm-up covered the rule evaluator's window (5 minutes), so that the growth says something. */
  judged: boolean;
}

/** The warm-up: the rule evaluator's window (5 minutes of readings) fills during it. */
export const WARM_UP_MINUTES = 5;

/** Checkpoints (minutes): the warm-up, then every 5 minutes and the end; a run under 10 minutes at 1/6, 1/2, 1. */
export function soakCheckpoints(minutes: number): number[] {
  if (minutes < 2 * WARM_UP_MINUTES) return [minutes / 6, minutes / 2, minutes];
  const marks: number[] = [];
  for (let m = WARM_UP_MINUTES; m < minutes; m += 5) marks.push(m);
  return [...marks, minutes];
}

/** Count and JSON size of every document per container of the database (a soak has a few thousand at most). */
async function documentSizes(client: CosmosClient, database: string): Promise<SoakCheckpoint['documents']> {
  const out: SoakCheckpoint['documents'] = {};
  const { resources: containers } = await client.database(database).containers.readAll().fetchAll();
  for (const { id } of containers) {
    const sizes = { count: 0, bytes: 0, largest: 0 };
    const pages = client.database(database).container(id).items.readAll().getAsyncIterator();
    for await (const page of pages) {
      for (const doc of page.resources) {
        const size = Buffer.byteLength(JSON.stringify(doc));
        sizes.count++;
        sizes.bytes += size;
        sizes.largest = Math.max(sizes.largest, size);
      }
    }
    out[id] = sizes;
  }
  return out;
}

const sampleSettings = (): Record<string, string> =>
  existsSync('local.settings.sample.json')
    ? ((JSON.parse(readFileSync('local.settings.sample.json', 'utf8')) as { Values?: Record<string, string> })
        .Values ?? {})
    : {};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The device simulator as a child process; its last 4,000 characters of output are kept. */
function startSimulator(options: SoakOptions, apiBaseUrl: string, durationMs: number) {
  const simulator = spawn(
    process.execPath,
    [
      options.simulator,
      '--api',
      apiBaseUrl,
      '--devices',
      String(options.devices),
      '--rate',
      String(options.devices * options.perDeviceRate),
      '--duration',
      String(durationMs / 1000),
      '--prefix',
      `soak-${Date.now()}`,
      '--anomalies',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  simulator.stdout.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  simulator.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => simulator.once('exit', resolve));
  return { process: simulator, output: () => output, exited };
}

/** The process's memory and the database's documents at each checkpoint, counted from `started`. */
async function takeCheckpoints(
  options: SoakOptions,
  runtime: { memory(): RuntimeMemory },
  cosmos: CosmosClient,
  database: string,
  started: number,
): Promise<SoakCheckpoint[]> {
  const checkpoints: SoakCheckpoint[] = [];
  for (const minute of soakCheckpoints(options.minutes)) {
    await sleep(Math.max(0, started + minute * 60_000 - Date.now()));
    (globalThis as { gc?: () => void }).gc?.(); // with --expose-gc: measure what is kept, not garbage
    const usage = process.memoryUsage();
    const checkpoint = {
      minute: Math.round(minute * 100) / 100,
      rssBytes: usage.rss,
      heapUsedBytes: usage.heapUsed,
      runtime: runtime.memory(),
      documents: await documentSizes(cosmos, database),
    };
    checkpoints.push(checkpoint);
    options.log(formatCheckpoint(checkpoint));
  }
  return checkpoints;
}

/**
 * Events of the IoT Hub events hub that the ingest consumer group has not checkpointed: each partition's last
 * sequence number against the group's checkpoint in the host's checkpoint container.
 */
export async function ingestBacklog(settings: Record<string, string>): Promise<number> {
  const target = resolveEventHubTarget(
    settings,
    'IotHubEventsConnection',
    settings.IotHubEventHubName ?? 'iothub-events',
  );
  if (target.kind !== 'connectionString') throw new Error('the soak runs against a local endpoint only');
  const group = settings.IngestConsumerGroup ?? 'ingest';
  const client = new EventHubConsumerClient(group, target.connectionString, target.eventHubName);
  try {
    const store = await checkpointStoreFor(settings.AzureWebJobsStorage ?? '', target);
    const checkpoints = await store.listCheckpoints(
      client.fullyQualifiedNamespace,
      client.eventHubName,
      group,
    );
    const done = new Map(checkpoints.map((c) => [c.partitionId, c.sequenceNumber]));
    let backlog = 0;
    for (const id of await client.getPartitionIds()) {
      const partition = await client.getPartitionProperties(id);
      if (partition.isEmpty) continue;
      backlog += partition.lastEnqueuedSequenceNumber - (done.get(id) ?? -1);
    }
    return backlog;
  } finally {
    await client.close();
  }
}

/** Runs the soak and returns its checkpoints (the caller prints them). */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const runSettings = {
    ...sampleSettings(),
    ...localAppSettings({ ...options.services, stop: () => Promise.resolve() }),
    Provisioning__RegistryOpsPerMinute: '100000',
    ...options.settings,
  };
  const runtime = await startRuntime({
    port: 0,
    settings: runSettings,
    log: () => undefined, // per-batch lines at 100 msg/s would drown the report
    localEventHubs: {
      connectionString: options.services.eventHubsConnectionString,
      retained: options.services.eventHubsRetained ?? (() => 0),
    },
    ...(options.functionsCore ? { functionsCore: options.functionsCore } : {}),
  });
  const durationMs = options.minutes * 60_000;
  const appSettings = { ...sampleSettings(), ...options.settings };
  const cosmos = new CosmosClient({
    endpoint: options.services.cosmosEndpoint,
    key: options.services.cosmosKey,
    agent: new Agent({ rejectUnauthorized: false, keepAlive: true }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  const database = appSettings.CosmosDbDatabaseName ?? 'iot';
  const simulator = startSimulator(options, runtime.apiBaseUrl, durationMs);
  try {
    // Checkpoints count from the first message, not from the simulator's device registrations.
    const ready = Date.now() + 120_000;
    while (!simulator.output().includes('devices ready') && Date.now() < ready) await sleep(200);
    if (!simulator.output().includes('devices ready'))
      throw new Error(`the simulator did not start:\n${simulator.output()}`);
    const checkpoints = await takeCheckpoints(options, runtime, cosmos, database, Date.now());
    const code = await simulator.exited;
    const output = simulator.output();
    if (code !== 0) throw new Error(`the simulator exited with ${code}:\n${output}`);
    const done = /(\d+) messages sent, (\d+) refused(?: \(([^)]*)\))?/.exec(
      output.slice(output.lastIndexOf('done')),
    );
    // Ingest catches up: its consumer group has checkpointed every event of the hub (bounded wait). The
    // endpoint keeps events for its retention whether or not they were read, so its size says nothing here.
    const drainUntil = Date.now() + 60_000;
    let backlog = await ingestBacklog(runSettings);
    while (backlog > 0 && Date.now() < drainUntil) {
      await sleep(200);
      backlog = await ingestBacklog(runSettings);
    }
    const first = checkpoints[0] as SoakCheckpoint;
    const last = checkpoints[checkpoints.length - 1] as SoakCheckpoint;
    return {
      checkpoints,
      growthAfterWarmUp: (last.rssBytes - first.rssBytes) / first.rssBytes,
      heapGrowthAfterWarmUp: (last.heapUsedBytes - first.heapUsedBytes) / first.heapUsedBytes,
      sent: Number(done?.[1] ?? 0),
      refused: Number(done?.[2] ?? 0),
      refusedBy: Object.fromEntries(
        (done?.[3] ?? '')
          .split(', ')
          .filter((part) => part !== '')
          .map((part) => {
            const [cause = '', n = '0'] = part.split(': ');
            return [cause, Number(n)];
          }),
      ),
      drained: runtime.memory(),
      ingestBacklog: backlog,
      judged: first.minute >= WARM_UP_MINUTES,
    };
  } finally {
    if (simulator.process.exitCode === null) simulator.process.kill('SIGINT');
    cosmos.dispose();
    await runtime.stop();
  }
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export function formatCheckpoint(c: SoakCheckpoint): string {
  const r = c.runtime;
  return (
    `soak: minute ${c.minute}: RSS ${mb(c.rssBytes)}, heap ${mb(c.heapUsedBytes)}; kept: ${r.hubEvents} hub events, ` +
    `${r.rules.devices} rule devices / ${r.rules.points} readings / ${r.rules.emitted} anomaly keys, ` +
    `${r.methodRequests} method requests; documents: ` +
    Object.entries(c.documents)
      .map(([id, d]) => `${id} ${d.count} (${kb(d.bytes)}, largest ${kb(d.largest)})`)
      .join(', ')
  );
}
