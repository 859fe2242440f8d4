/**
 * The shape of the validated configuration: what src/config.ts returns (it re-exports these types), kept apart
 * from the settings schema and rules so each file reads on its own.
 */
import type { OutboxPolicy } from './alerts/outbox.js';
import type { IngestOptions } from './telemetry/ingest-options.js';

/** Where the Cosmos DB account is and how to authenticate to it. */
export interface CosmosConfig {
  endpoint: string;
  /** Account key (local emulator); absent means a managed identity (DefaultAzureCredential). */
  key: string | undefined;
  databaseName: string;
  stateContainerName: string;
  /** Accept the self-signed certificate of a loopback emulator; never allowed for a remote endpoint. */
  allowSelfSignedTls: boolean;
}

/** Blob storage for the raw archive and dead letters. */
export type StorageConfig = ({ connectionString: string } | { blobServiceUri: string }) & {
  rawArchiveContainer: string;
  deadLetterContainer: string;
};

/** The whole validated configuration of the function app. */
export interface AppConfig {
  cosmos: CosmosConfig;
  storage: StorageConfig;
  ingest: IngestOptions & {
    stateWriteConcurrency: number;
    maxRetryCount: number;
    /** Devices whose last state each instance keeps in memory to skip the read before a write (0 = off). */
    stateCacheSize: number;
    /** How long (ms) a cached state may be used before it is read again. */
    stateCacheTtlMs: number;
    /** Most bytes of serialized state each instance keeps in that cache (0 = off). */
    stateCacheMaxBytes: number;
  };
  /** Create databases, containers and blob containers on first use (local runs; Bicep does it in Azure). */
  createResourcesIfMissing: boolean;
  provisioning: ProvisioningConfig;
  alerts: AlertsConfig;
  workflows: WorkflowsConfig;
  replay: ReplayConfig;
  http: HttpConfig;
  /** Optimistic concurrency: attempts of one read → change → conditional write before 503 (src/shared/optimistic-update.ts). */
  concurrency: { maxAttempts: number };
}

/** Limits of the HTTP API's request bodies (src/shared/api-request.ts reads every body). */
export interface HttpConfig {
  /** Largest JSON body any route accepts, bytes; more is 413. */
  maxBodyBytes: number;
  /** Largest bulk provisioning body (JSON array or NDJSON), bytes; more is 413. */
  maxBulkBodyBytes: number;
}

/** Durable provisioning workflows and scheduled jobs. */
export interface WorkflowsConfig {
  /** Webhooks called (POST) for every provisioned device, in order: SIM activation, billing, … */
  hooks: string[];
  /** Initial desired properties by `metadata.model` (`default` for any other model). */
  twinTemplates: Record<string, Record<string, unknown>>;
  /** Identity-registry operations per minute bulk provisioning may use (IoT Hub S1: 100 per unit). */
  registryOpsPerMinute: number;
  /** Private container for bulk requests, generated keys and per-chunk results while a workflow runs. */
  workContainer: string;
  /** Private container holding `{instanceId}.jsonl`: per-device outcomes and keys of each provisioning run. */
  resultsContainer: string;
  /** 32 bytes, base64: encrypts generated device keys in the work and results blobs. */
  keysEncryptionKey: string;
  /** How long the results route serves a run's device keys, ms; then they are dropped. */
  keysRetentionMs: number;
  jobsContainerName: string;
  /** How often a running IoT Hub job is polled, ms. */
  jobPollIntervalMs: number;
  /** Private container of each job run's per-device outcomes (`{jobId}/r{run}/b{batch}.jsonl`). */
  jobDeviceResultsContainer: string;
  /** Per-device outcomes kept per job run; the rest are counted as dropped. */
  maxJobDeviceResults: number;
}

/** The hot path's alerting: where anomalies come from and where alerts go. */
export interface AlertsConfig {
  alarmsContainerName: string;
  /** Slack incoming webhook (a secret); absent means alerts are logged and kept in alarms. */
  slackWebhookUrl: string | undefined;
  /** Base of the device-state API URL named in alerts (as text: the route needs a function key). */
  publicApiBaseUrl: string;
  /** The console's device page, `{deviceId}` replaced by the URL-encoded id: the only link in an alert. */
  deviceLinkTemplate: string | undefined;
  /** No second alert for the same alarm within this time, ms. */
  cooldownMs: number;
  /** notifyAnomalies' retry policy: retries before the batch is parked in dead letters. */
  maxRetryCount: number;
  /** Timeout of one request to Slack, ms. */
  deliveryTimeoutMs: number;
  /** Longest Retry-After from Slack that is honoured, ms. */
  maxRetryAfterMs: number;
  /** How long a delivery waits for its turn at the webhook (1 request/s), ms, before leaving it to the outbox. */
  maxQueueWaitMs: number;
  /** NCRONTAB schedule of redeliverAlerts. */
  redeliverySchedule: string;
  /** The outbox's lease, horizon and back-off after a failed attempt. */
  outbox: OutboxPolicy;
}

/** Where device identities live and how the provisioning API behaves. */
export interface ProvisioningConfig {
  /** IoT Hub host name written into device connection strings. */
  hostName: string;
  identityStore:
    | { kind: 'table'; connectionString: string; tableName: string; encryptionKey: string }
    | { kind: 'iothub'; connectionString: string }
    | { kind: 'iothub'; hostName: string };
  devicesContainerName: string;
  reconciliationContainerName: string;
  /** Largest metadata object accepted, in bytes of JSON. */
  maxMetadataBytes: number;
}

/** The replay hub's default name and consumer group (the Bicep's and the local endpoint's). */
export const DEFAULT_REPLAY_HUB = 'replay';
export const DEFAULT_REPLAY_CONSUMER_GROUP = 'replay';

/** The replay hub that `npm run replay` sends archived records to and replayTelemetry consumes (ADR 0013). */
export interface ReplayConfig {
  eventHubName: string;
  consumerGroup: string;
  /** What the trigger registers: `%ReplayEventHubName%` when the setting exists, else the literal default. */
  binding: { eventHubName: string; consumerGroup: string };
  /** Whether ReplayEventHubConnection (or its managed-identity namespace) is set. */
  connected: boolean;
}
