import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential } from '@azure/identity';
// azure-iothub is CommonJS without named exports that Node's ESM loader can see: take them from the default.
import iothub from 'azure-iothub';
import type { AlarmStore } from '../alerts/alarms.js';
import type { AlertNotifier } from '../alerts/notifier.js';
import type { AppConfig, ProvisioningConfig } from '../config.js';
import type { HealthProbe } from '../health/health.js';
import type { IdentityStore } from '../provisioning/ports.js';
import type { OrphanLog } from '../provisioning/provisioning-service.js';
import type { OrphanRecords } from '../provisioning/reconcile.js';
import type { DeviceCatalog } from '../provisioning/catalog.js';
import type { TwinStore } from '../provisioning/twin.js';
import type { DeadLetterStore, DeviceStateStore, RawArchive } from '../telemetry/ports.js';
import type { JobDeviceResultStore, JobNotifier, HubJobRunner, ScheduledJobStore } from '../jobs/ports.js';
import type { PrivateFiles, SecretCipher } from '../provisioning/ports.js';
import { setMaxAttempts } from '../shared/optimistic-update.js';
import type { ProvisioningHooks } from '../provisioning/provision-device-workflow.js';
import { BlobPrivateFiles } from './blob/blob-private-files.js';
import { BlobJobDeviceResults } from './blob/blob-job-device-results.js';
import { CosmosScheduledJobStore } from './cosmos/cosmos-scheduled-job-store.js';
import { IotHubJobRunner } from './iothub/iothub-job-runner.js';
import { localDeviceConnections } from './local/local-device-connections.js';
import { LocalHubJobRunner } from './local/local-hub-job-runner.js';
import { SlackJobNotifier } from './slack/job-notifier.js';
import { HttpProvisioningHooks } from './webhooks/http-provisioning-hooks.js';
import { createHealthProbes, type IdentityStoreTarget } from './health-probes.js';
import { BlobDeadLetterStore, BlobJsonLinesStore, BlobRawArchive } from './blob/blob-json-lines-store.js';
import { createBlobService } from './blob/blob-service.js';
import { createCosmosClient, lazyContainer } from './cosmos/cosmos-client.js';
import { CosmosAlarmStore } from './cosmos/cosmos-alarm-store.js';
import { CosmosDeviceCatalog } from './cosmos/cosmos-device-catalog.js';
import { CosmosDeviceStateStore } from './cosmos/cosmos-device-state-store.js';
import { CosmosOrphanLog } from './cosmos/cosmos-orphan-log.js';
import { AesGcmCipher } from './crypto/aes-gcm-cipher.js';
import { IotHubIdentityStore } from './iothub/iothub-identity-store.js';
import { IotHubTwinStore } from './iothub/iothub-twin-store.js';
import { TableIdentityStore } from './tables/table-identity-store.js';
import { SlackWebhook } from './slack/slack-webhook.js';
import { LogNotifier, SlackWebhookNotifier } from './slack/slack-webhook-notifier.js';
import { TableTwinStore } from './tables/table-twin-store.js';

const { Registry, JobClient } = iothub;

/** Every adapter the app uses, built from validated config with one SDK client per service. */
export interface Adapters {
  stateStore: DeviceStateStore;
  archive: RawArchive;
  deadLetters: DeadLetterStore;
  identities: IdentityStore;
  twins: TwinStore;
  /** Our Cosmos DB store of device metadata and status (not IoT Hub's identity registry). */
  catalog: DeviceCatalog;
  /** Orphaned identities: recorded by registration, listed and resolved by reconciliation. */
  orphans: OrphanLog & OrphanRecords;
  alarms: AlarmStore;
  notifier: AlertNotifier;
  /** Private blobs of running provisioning workflows (requests, generated keys, chunk results). */
  work: PrivateFiles;
  /** Private results of provisioning workflows (`{instanceId}.jsonl`, keys included, encrypted). */
  results: PrivateFiles;
  /** Encrypts generated device keys in the work and results blobs (Provisioning__KeysEncryptionKey). */
  keysCipher: SecretCipher;
  hooks: ProvisioningHooks;
  /** Our scheduled twin/method jobs (Cosmos DB container `jobs`). */
  scheduledJobs: ScheduledJobStore;
  /** Runs IoT Hub jobs: IoT Hub's job service, or its local stand-in. */
  hubJobRunner: HubJobRunner;
  /** Per-device outcomes of each job run (GET /jobs/{id}/devices). */
  jobDeviceResults: JobDeviceResultStore;
  jobNotifier: JobNotifier;
  /** The dependencies GET /api/health probes. */
  health: HealthProbe[];
}

export function createAdapters(config: AppConfig): Adapters {
  setMaxAttempts(config.concurrency.maxAttempts); // the one limit of every optimistic update (ETag retry loop)
  const create = config.createResourcesIfMissing;
  const cosmos = createCosmosClient(config.cosmos);
  const blobs = createBlobService(config.storage);
  const { identities, twins, identityStore } = createIdentityStores(config.provisioning, create);
  // One client per webhook for all Slack traffic of the instance (alerts and job notices): one rate limit.
  const slack = createSlackWebhook(config);
  const catalog = new CosmosDeviceCatalog(
    lazyContainer(cosmos, config.cosmos.databaseName, config.provisioning.devicesContainerName, {
      create,
      partitionKeyPath: '/id',
    }),
  );
  return {
    stateStore: new CosmosDeviceStateStore(
      lazyContainer(cosmos, config.cosmos.databaseName, config.cosmos.stateContainerName, {
        create,
        partitionKeyPath: '/id',
      }),
      config.ingest.stateCacheSize,
      config.ingest.stateCacheTtlMs,
      config.ingest.stateCacheMaxBytes,
    ),
    archive: new BlobRawArchive(new BlobJsonLinesStore(blobs, config.storage.rawArchiveContainer, create)),
    deadLetters: new BlobDeadLetterStore(
      new BlobJsonLinesStore(blobs, config.storage.deadLetterContainer, create),
    ),
    identities,
    twins,
    catalog,
    alarms: new CosmosAlarmStore(
      lazyContainer(cosmos, config.cosmos.databaseName, config.alerts.alarmsContainerName, {
        create,
        partitionKeyPath: '/id',
      }),
    ),
    notifier: createNotifier(config, slack),
    work: new BlobPrivateFiles(blobs, config.workflows.workContainer, create),
    results: new BlobPrivateFiles(blobs, config.workflows.resultsContainer, create),
    keysCipher: new AesGcmCipher(config.workflows.keysEncryptionKey),
    hooks: new HttpProvisioningHooks(),
    scheduledJobs: new CosmosScheduledJobStore(
      lazyContainer(cosmos, config.cosmos.databaseName, config.workflows.jobsContainerName, {
        create,
        partitionKeyPath: '/id',
      }),
    ),
    hubJobRunner: createHubJobRunner(config.provisioning, { twins, catalog }, create),
    jobDeviceResults: new BlobJobDeviceResults(blobs, config.workflows.jobDeviceResultsContainer, create),
    jobNotifier: new SlackJobNotifier(
      slack,
      (message) => {
        console.warn(message);
      },
      config.alerts.maxQueueWaitMs + config.alerts.deliveryTimeoutMs,
    ),
    health: createHealthProbes({
      cosmos,
      blobs,
      rawArchiveContainer: config.storage.rawArchiveContainer,
      identityStore,
      slackWebhookUrl: config.alerts.slackWebhookUrl,
    }),
    orphans: new CosmosOrphanLog(
      lazyContainer(cosmos, config.cosmos.databaseName, config.provisioning.reconciliationContainerName, {
        create,
        partitionKeyPath: '/id',
      }),
    ),
  };
}

/** Azurite on loopback (or the development-storage shortcut): the only storage reached over plain HTTP. */
const LOCAL_STORAGE = /https?:\/\/127\.0\.0\.1|UseDevelopmentStorage=true/;

/** A Table storage client; plain HTTP is allowed for Azurite only (real Table storage is always HTTPS). */
export function storageTableClient(connectionString: string, tableName: string): TableClient {
  return TableClient.fromConnectionString(connectionString, tableName, {
    allowInsecureConnection: LOCAL_STORAGE.test(connectionString),
  });
}

function createIdentityStores(
  config: ProvisioningConfig,
  create: boolean,
): { identities: IdentityStore; twins: TwinStore; identityStore: IdentityStoreTarget } {
  const store = config.identityStore;
  if (store.kind === 'table') {
    const table = storageTableClient(store.connectionString, store.tableName);
    return {
      identities: new TableIdentityStore(table, new AesGcmCipher(store.encryptionKey), {
        createTableIfMissing: create,
      }),
      twins: new TableTwinStore(table, create),
      identityStore: { kind: 'table', table },
    };
  }
  const identityRegistry =
    'connectionString' in store
      ? Registry.fromConnectionString(store.connectionString)
      : Registry.fromTokenCredential(store.hostName, new DefaultAzureCredential());
  const hostName =
    'connectionString' in store
      ? (/(?:^|;)HostName=([^;]+)/i.exec(store.connectionString)?.[1] ?? '')
      : store.hostName;
  return {
    identities: new IotHubIdentityStore(identityRegistry),
    twins: new IotHubTwinStore(identityRegistry),
    identityStore: { kind: 'iothub', hostName },
  };
}

/** IoT Hub's job service; the local run (table identity store, no IoT Hub) gets the local job runner. */
function createHubJobRunner(
  config: ProvisioningConfig,
  local: { twins: TwinStore; catalog: DeviceCatalog },
  create: boolean,
): HubJobRunner {
  const store = config.identityStore;
  if (store.kind === 'table') {
    // The table keeps its stored name `localjobs`: it holds the local stand-in's IoT Hub jobs.
    const table = storageTableClient(store.connectionString, 'localjobs');
    return new LocalHubJobRunner(
      { ...local, methods: localDeviceConnections, hubJobTable: table },
      { createTableIfMissing: create },
    );
  }
  return 'connectionString' in store
    ? new IotHubJobRunner(
        JobClient.fromConnectionString(store.connectionString),
        Registry.fromConnectionString(store.connectionString),
      )
    : new IotHubJobRunner(
        JobClient.fromTokenCredential(store.hostName, new DefaultAzureCredential()),
        Registry.fromTokenCredential(store.hostName, new DefaultAzureCredential()),
      );
}

/** Slack allows about one request per second per incoming webhook. */
const SLACK_MIN_INTERVAL_MS = 1000;

function createSlackWebhook(config: AppConfig): SlackWebhook | undefined {
  const { slackWebhookUrl, deliveryTimeoutMs, maxRetryAfterMs } = config.alerts;
  if (!slackWebhookUrl) return undefined;
  return new SlackWebhook({
    url: slackWebhookUrl,
    minIntervalMs: SLACK_MIN_INTERVAL_MS,
    timeoutMs: deliveryTimeoutMs,
    maxRetryAfterMs,
  });
}

function createNotifier(config: AppConfig, webhook: SlackWebhook | undefined): AlertNotifier {
  // Function hosts collect console output into the app's logs.
  const log = (message: string) => {
    console.warn(message);
  };
  const { publicApiBaseUrl, deviceLinkTemplate, maxQueueWaitMs } = config.alerts;
  if (!webhook) return new LogNotifier(log);
  return new SlackWebhookNotifier({
    webhook,
    links: {
      stateApiUrl: (deviceId) => `${publicApiBaseUrl}/devices/${encodeURIComponent(deviceId)}/state`,
      ...(deviceLinkTemplate === undefined
        ? {}
        : { deviceUrl: (id: string) => deviceLinkTemplate.replaceAll('{deviceId}', encodeURIComponent(id)) }),
    },
    maxWaitMs: maxQueueWaitMs,
    log,
  });
}
