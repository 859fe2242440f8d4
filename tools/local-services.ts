/**
 * Starts the real local stand-ins for Azure services: Azurite (Blob, Queue, Table) as a child process,
 * @vercel/cosmosdb-server (the Cosmos DB REST API) and the local Event Hubs endpoint (AMQP 1.0, as the Event
 * Hubs emulator speaks it: tools/local-eventhubs/) in this process. Used by the test setup, the benchmark and
 * `npm start`. With a data folder they keep their data there, and a write they answer is on disk first (see
 * ADR 0007, "Durability").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createLocalCosmosServer, type LocalCosmosServer } from './local-cosmos.js';
import { LOCAL_EVENT_HUBS } from './local-eventhubs/config.js';
import { startLocalEventHubs, type LocalEventHubs } from './local-eventhubs/server.js';
import {
  azuriteBootstrap,
  claimPidFile,
  describePortHolder,
  removePidFile,
  writePidFile,
} from './local-processes.js';

/** Azurite's documented development account (public, emulator-only). */
const DEV_ACCOUNT = 'devstoreaccount1';
/** Azurite's documented development account key (public, emulator-only). */
export const AZURITE_DEV_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
/** The Cosmos DB emulator's documented key; the local server accepts any key. */
export const LOCAL_COSMOS_KEY =
  'C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==';

/** The local services' endpoints, connection string and key on loopback ports (Azurite's development account). */
export function localEndpoints(ports: {
  blob: number | string;
  queue: number | string;
  table: number | string;
  cosmos: number | string;
}) {
  const endpoint = (port: number | string) => `http://127.0.0.1:${port}/${DEV_ACCOUNT}`;
  const [blobEndpoint, queueEndpoint, tableEndpoint] = [
    endpoint(ports.blob),
    endpoint(ports.queue),
    endpoint(ports.table),
  ];
  return {
    blobEndpoint,
    queueEndpoint,
    tableEndpoint,
    storageConnectionString:
      `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${AZURITE_DEV_KEY};` +
      `BlobEndpoint=${blobEndpoint};QueueEndpoint=${queueEndpoint};TableEndpoint=${tableEndpoint};`,
    cosmosEndpoint: `https://127.0.0.1:${ports.cosmos}/`,
    cosmosKey: LOCAL_COSMOS_KEY,
  };
}

export interface LocalServicesOptions {
  /** Keep Azurite data in memory only (tests, throwaway runs). */
  inMemory: boolean;
  /** Folder for Azurite's data when not in memory. */
  location?: string;
  /**
   * The data folder (not in memory): Cosmos data go to `{dataDir}/cosmos`, and `{dataDir}/azurite.pid` names
   * the Azurite child, so that a start after a crash stops the one the crashed run left behind.
   */
  dataDir?: string;
  /** Told when the Azurite child exits while the services run (default: nothing; `died` resolves too). */
  log?: (message: string) => void;
  /** Ports; 0 (the default) picks free ones. */
  blobPort?: number;
  queuePort?: number;
  tablePort?: number;
  cosmosPort?: number;
  /** The local Event Hubs endpoint's AMQP port (0, the default, picks a free one; npm start uses 5672). */
  eventHubsPort?: number;
}

export interface LocalServices {
  blobEndpoint: string;
  queueEndpoint: string;
  tableEndpoint: string;
  /** A connection string naming the three Azurite endpoints explicitly (works on any port). */
  storageConnectionString: string;
  cosmosEndpoint: string;
  cosmosKey: string;
  /** The local Event Hubs endpoint's emulator connection string (no EntityPath; its key is the public local one). */
  eventHubsConnectionString: string;
  /** The local Event Hubs endpoint's AMQP port. */
  eventHubsPort: number;
  /** Events the local Event Hubs endpoint keeps in memory (bounded by its retention; not passed to tests). */
  eventHubsRetained?: () => number;
  /** Resolves with a message if Azurite exits on its own while the services run (never otherwise). */
  died: Promise<string>;
  /**
   * Stops the Event Hubs endpoint, the Cosmos DB server (final snapshot), then Azurite (once, whoever calls
   * again); `log` hears each step.
   */
  stop: (log?: (step: string) => void) => Promise<void>;
  /** A forced exit's last act, synchronous: asks Azurite to stop (once) without waiting, so it is not orphaned. */
  abandon: () => void;
}

function waitForAzurite(child: ChildProcess): Promise<Record<'Blob' | 'Queue' | 'Table', number>> {
  return new Promise((resolve, reject) => {
    const ports: Partial<Record<'Blob' | 'Queue' | 'Table', number>> = {};
    let output = '';
    const timer = setTimeout(() => {
      fail(new Error(`Azurite did not start within 30 s:\n${output}`));
    }, 30_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      for (const m of output.matchAll(
        /Azurite (Blob|Queue|Table) service is successfully listening at http:\/\/[^:]+:(\d+)/g,
      )) {
        ports[m[1] as 'Blob' | 'Queue' | 'Table'] = Number(m[2]);
      }
      if (ports.Blob && ports.Queue && ports.Table) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(ports as Record<'Blob' | 'Queue' | 'Table', number>);
      }
      const inUse = /(?:EADDRINUSE|address already in use)[^\n]*?:(\d+)/i.exec(output);
      if (inUse) {
        const holder = describePortHolder(Number(inUse[1]));
        fail(new Error(`Azurite could not start: a port is already in use${holder}.\n${output}`));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      fail(new Error(`Azurite exited with code ${code}:\n${output}`));
    });
  });
}

/** Starts Azurite and the Cosmos DB server; `stop()` shuts both down. */
export async function startLocalServices(options: LocalServicesOptions): Promise<LocalServices> {
  const require = createRequire(import.meta.url);
  const azuriteMain = require.resolve('azurite/dist/src/azurite.js');
  const durable = !options.inMemory && options.dataDir !== undefined;
  const pidFile = durable ? join(options.dataDir ?? '', 'azurite.pid') : undefined;
  if (options.dataDir !== undefined && durable) mkdirSync(options.dataDir, { recursive: true });
  if (pidFile) await claimPidFile(pidFile, options.log);
  const args = [
    // Azurite exits with this process; with a data folder it saves its metadata before answering a write (see
    // local-processes.ts).
    '-e',
    azuriteBootstrap(durable),
    azuriteMain,
    '--silent',
    '--disableTelemetry',
    '--skipApiVersionCheck',
    '--blobPort',
    String(options.blobPort ?? 0),
    '--queuePort',
    String(options.queuePort ?? 0),
    '--tablePort',
    String(options.tablePort ?? 0),
    ...(options.inMemory ? ['--inMemoryPersistence'] : ['--location', options.location ?? '.local/azurite']),
  ];
  // Its own process group: a terminal's Ctrl-C (SIGINT to the foreground group) must not reach Azurite while it
  // writes its files; the parent stops it once, as the last step of its ordered shutdown. Its stdin is a pipe
  // that closes when this process is gone (even after a kill -9), and then Azurite stops itself.
  const azurite = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  if (pidFile && azurite.pid !== undefined) writePidFile(pidFile, azurite.pid, options.location);
  const cosmos = createLocalCosmosServer(durable ? join(options.dataDir ?? '', 'cosmos') : undefined);
  let eventHubs: LocalEventHubs | undefined;
  let stopping = false;
  const died = new Promise<string>((resolve) => {
    azurite.once('exit', (code, signal) => {
      if (stopping) return;
      const message = `Azurite (pid ${azurite.pid ?? '?'}) exited unexpectedly (${signal ?? `code ${code}`}): storage is gone, stopping.`;
      options.log?.(message);
      resolve(message);
    });
  });
  const stopAll = onlyOnce(async (log?: (step: string) => void) => {
    stopping = true;
    if (eventHubs) {
      await eventHubs.stop();
      log?.('stopped the Event Hubs endpoint');
    }
    await stop(azurite, cosmos, log);
    if (pidFile) removePidFile(pidFile, azurite.pid);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      cosmos.server.once('listening', resolve);
      cosmos.server.once('error', (error: NodeJS.ErrnoException) => {
        const why =
          error.code === 'EADDRINUSE'
            ? `the port is already in use${describePortHolder(options.cosmosPort ?? 0)}`
            : String(error);
        reject(new Error(`Cosmos DB server could not listen on port ${options.cosmosPort ?? 0}: ${why}`));
      });
      cosmos.server.listen(options.cosmosPort ?? 0, '127.0.0.1');
    });
    const ports = await waitForAzurite(azurite);
    const cosmosPort = (cosmos.server.address() as AddressInfo).port;
    eventHubs = await startEventHubs(options, durable);
    const hubs = eventHubs;
    return {
      ...localEndpoints({ blob: ports.Blob, queue: ports.Queue, table: ports.Table, cosmos: cosmosPort }),
      eventHubsConnectionString: hubs.connectionString(),
      eventHubsPort: hubs.port,
      eventHubsRetained: () => hubs.retained(),
      died,
      stop: stopAll,
      abandon: () => {
        stopping = true;
        terminate(azurite);
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** The local Event Hubs endpoint: its events under `{dataDir}/eventhubs` when durable, in memory otherwise. */
async function startEventHubs(options: LocalServicesOptions, durable: boolean): Promise<LocalEventHubs> {
  const port = options.eventHubsPort ?? 0;
  try {
    return await startLocalEventHubs({
      port,
      hubs: LOCAL_EVENT_HUBS,
      // Its warnings and errors (a dropped event, a failed write) only: `options.log` is the services' error line.
      log: (line) => {
        if (!line.includes('listening on')) options.log?.(line);
      },
      ...(durable ? { folder: join(options.dataDir ?? '', 'eventhubs') } : {}),
    });
  } catch (error) {
    const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE' || /EADDRINUSE/.test(String(error));
    const why = inUse ? `the port is already in use${describePortHolder(port)}` : String(error);
    throw new Error(`Event Hubs endpoint could not listen on port ${port}: ${why}`);
  }
}

/** The first call's promise, whoever calls again: the services are stopped once. */
const onlyOnce = <A extends unknown[]>(
  fn: (...args: A) => Promise<void>,
): ((...args: A) => Promise<void>) => {
  let running: Promise<void> | undefined;
  // eslint-disable-next-line no-restricted-syntax -- forwards stop()'s one optional argument
  return (...args: A) => (running ??= fn(...args));
};

async function stop(
  azurite: ChildProcess,
  cosmos: LocalCosmosServer,
  log: (step: string) => void = () => undefined,
): Promise<void> {
  const server = cosmos.server;
  if (!server.listening) server.removeAllListeners('error');
  else {
    server.closeAllConnections();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    // The final snapshot, once no request can change the data any more.
    await cosmos.close();
    log('stopped the Cosmos DB server');
  }
  if (azurite.exitCode === null && azurite.signalCode === null) {
    const exited = once(azurite, 'exit');
    terminate(azurite);
    await exited;
    log('stopped Azurite');
  }
}

const terminated = new WeakSet<ChildProcess>();
/** SIGTERM once: a second signal while Azurite saves its files would race its own shutdown. */
function terminate(azurite: ChildProcess): void {
  if (terminated.has(azurite) || azurite.exitCode !== null || azurite.signalCode !== null) return;
  terminated.add(azurite);
  azurite.kill('SIGTERM');
}

/**
 * Encryption key of the local table identity store: fixed so that identities kept in Azurite's data folder
 * stay readable across restarts. Local use only; a deployment brings its own (or uses IoT Hub).
 */
export const LOCAL_IDENTITY_ENCRYPTION_KEY = Buffer.from('local-only identity key, 32 byte').toString(
  'base64',
);

/** The Event Hub settings of the app on a local endpoint: the IoT Hub events, anomalies and replay hubs. */
export function localEventHubSettings(connectionString: string): Record<string, string> {
  return {
    IotHubEventsConnection: connectionString,
    IotHubEventHubName: 'iothub-events',
    IngestConsumerGroup: 'ingest',
    AnomaliesEventHubConnection: connectionString,
    AnomaliesEventHubName: 'anomalies',
    AnomaliesConsumerGroup: 'notify',
    ReplayEventHubConnection: connectionString,
    ReplayEventHubName: 'replay',
    ReplayConsumerGroup: 'replay',
  };
}

/** App settings that point the function app at these services. */
export function localAppSettings(
  services: Partial<LocalServices> &
    Pick<LocalServices, 'storageConnectionString' | 'cosmosEndpoint' | 'cosmosKey'>,
): Record<string, string> {
  const eventHubs = services.eventHubsConnectionString;
  return {
    AzureWebJobsStorage: services.storageConnectionString,
    ArchiveStorageConnectionString: services.storageConnectionString,
    CosmosDb__accountEndpoint: services.cosmosEndpoint,
    CosmosDbKey: services.cosmosKey,
    CosmosDbAllowSelfSignedTls: 'true',
    CreateResourcesIfMissing: 'true',
    IotHubHostName: 'localhost',
    ...(eventHubs === undefined ? {} : localEventHubSettings(eventHubs)),
    IdentityStore: 'table',
    IdentityStorageConnectionString: services.storageConnectionString,
    IdentityStore__EncryptionKey: LOCAL_IDENTITY_ENCRYPTION_KEY,
  };
}
