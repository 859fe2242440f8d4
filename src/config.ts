import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BULK_BODY_BYTES } from './shared/api-request.js';
import { ConfigError } from './shared/errors.js';
import { DEFAULT_MAX_ATTEMPTS } from './shared/optimistic-update.js';
import { DEFAULT_INGEST_OPTIONS, DEFAULT_STATE_CACHE } from './telemetry/ingest-options.js';
import { settleReserveMs } from './alerts/outbox.js';
import {
  DEFAULT_REPLAY_CONSUMER_GROUP,
  DEFAULT_REPLAY_HUB,
  type AlertsConfig,
  type AppConfig,
  type ProvisioningConfig,
  type ReplayConfig,
  type WorkflowsConfig,
} from './config-types.js';

export type {
  AlertsConfig,
  AppConfig,
  CosmosConfig,
  HttpConfig,
  ProvisioningConfig,
  ReplayConfig,
  StorageConfig,
  WorkflowsConfig,
} from './config-types.js';

/** Example values shown when a setting is missing or malformed. */
const EXAMPLES: Record<string, string> = {
  IotHubEventHubName: 'iothub-ehub-myhub-1234567-0123456789',
  IngestConsumerGroup: 'ingest',
  AnomaliesEventHubName: 'anomalies',
  AnomaliesConsumerGroup: 'notify',
  ReplayEventHubName: 'replay',
  ReplayConsumerGroup: 'replay',
  ReplayEventHubConnection:
    'Endpoint=sb://mynamespace.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=...',
  IotHubEventsConnection:
    'Endpoint=sb://ihsuprodxx.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=...;EntityPath=...',
  CosmosDb__accountEndpoint: 'https://myaccount.documents.azure.com:443/',
  ArchiveStorageConnectionString: 'UseDevelopmentStorage=true',
  AnomaliesEventHubConnection:
    'Endpoint=sb://mynamespace.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=...',
  SlackWebhookUrl: 'https://hooks.slack.com/services/T000/B000/XXXX',
  IotHubHostName: 'myhub.azure-devices.net',
  IdentityStorageConnectionString: 'UseDevelopmentStorage=true',
  IotHubRegistryConnectionString:
    'HostName=myhub.azure-devices.net;SharedAccessKeyName=registryReadWrite;SharedAccessKey=...',
  ArchiveStorage__blobServiceUri: 'https://mystorage.blob.core.windows.net',
  Provisioning__Hooks: 'https://sim.example.com/activate,https://billing.example.com/devices',
  Provisioning__TwinTemplates: '{"thermostat-v2":{"telemetryIntervalSeconds":60},"default":{}}',
  Alerts__RedeliverySchedule: '0 */1 * * * *',
  Alerts__DeviceLinkTemplate: 'https://console.example.com/devices/{deviceId}',
};

const bool = z
  .enum(['true', 'false', '1', '0', ''])
  .optional()
  .transform((v) => v === 'true' || v === '1');
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const nonEmpty = z.string().trim().min(1);
/** An optional setting; an empty value (as in local.settings.sample.json) counts as unset. */
const optionalText = z.preprocess((v) => (v === '' ? undefined : v), nonEmpty.optional());
const loopbackHosts = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

const schema = z.object({
  IotHubEventHubName: nonEmpty,
  IngestConsumerGroup: nonEmpty,
  IotHubEventsConnection: nonEmpty.optional(),
  IotHubEventsConnection__fullyQualifiedNamespace: optionalText,

  CosmosDb__accountEndpoint: z.url({ protocol: /^https?$/ }),
  CosmosDbKey: nonEmpty.optional(),
  CosmosDbDatabaseName: nonEmpty.default('iot'),
  CosmosDbStateContainerName: nonEmpty.default('deviceState'),
  CosmosDbAllowSelfSignedTls: bool,

  ArchiveStorageConnectionString: nonEmpty.optional(),
  ArchiveStorage__blobServiceUri: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z.url({ protocol: /^https?$/ }).optional(),
  ),
  RawArchiveContainerName: nonEmpty.default('telemetry-raw'),
  DeadLetterContainerName: nonEmpty.default('telemetry-deadletter'),

  CreateResourcesIfMissing: bool,

  IotHubHostName: nonEmpty,
  IdentityStore: z.enum(['table', 'iothub']).default('table'),
  IotHubRegistryConnectionString: optionalText,
  IotHubRegistry__hostName: optionalText,
  IdentityStorageConnectionString: nonEmpty.optional(),
  IdentityStore__EncryptionKey: nonEmpty.optional(),
  IdentityTableName: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{2,62}$/)
    .default('identities'),
  CosmosDbDevicesContainerName: nonEmpty.default('devices'),
  CosmosDbReconciliationContainerName: nonEmpty.default('reconciliation'),
  Provisioning__MaxMetadataBytes: positiveInt(8192),
  Provisioning__Hooks: z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.url({ protocol: /^https?$/ }))),
  Provisioning__TwinTemplates: optionalText.pipe(
    z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({ code: 'custom', message: 'must be a JSON object' });
          return z.NEVER;
        }
      })
      .pipe(z.record(z.string(), z.record(z.string(), z.unknown())))
      .optional(),
  ),
  Provisioning__RegistryOpsPerMinute: positiveInt(100),
  ProvisioningWorkContainerName: nonEmpty.default('provisioning-work'),
  ProvisioningResultsContainerName: nonEmpty.default('provisioning-results'),
  Provisioning__KeysEncryptionKey: optionalText,
  Provisioning__KeysRetentionHours: z.coerce.number().positive().max(8760).default(24),
  CosmosDbJobsContainerName: nonEmpty.default('jobs'),
  Jobs__PollIntervalSeconds: positiveInt(30),
  JobDeviceResultsContainerName: nonEmpty.default('job-device-results'),
  Jobs__MaxDeviceResults: positiveInt(10_000),

  AnomaliesEventHubConnection: optionalText,
  AnomaliesEventHubConnection__fullyQualifiedNamespace: optionalText,
  // Read by %Setting% binding expressions (src/index.ts): the host resolves them from app settings only and does
  // not index a function whose setting is missing, so no default here.
  AnomaliesEventHubName: nonEmpty,
  AnomaliesConsumerGroup: nonEmpty,
  // The replay hub (npm run replay, docs/adr/0013): optional; without a connection replayTelemetry's listener
  // stays down and everything else runs.
  ReplayEventHubConnection: optionalText,
  ReplayEventHubConnection__fullyQualifiedNamespace: optionalText,
  ReplayEventHubName: optionalText,
  ReplayConsumerGroup: optionalText,
  CosmosDbAlarmsContainerName: nonEmpty.default('alarms'),
  SlackWebhookUrl: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z.url({ protocol: /^https?$/ }).optional(),
  ),
  PublicApiBaseUrl: z.url({ protocol: /^https?$/ }).default('http://localhost:7071/api'),
  Alerts__DeviceLinkTemplate: optionalText.pipe(
    z
      .string()
      .refine((t) => t.includes('{deviceId}'), 'must contain {deviceId}')
      .refine(
        (t) => URL.canParse(t.replaceAll('{deviceId}', 'x')) && /^https?:/i.test(t),
        'must be an http(s) URL',
      )
      .optional(),
  ),
  Alerts__CooldownMinutes: z.coerce.number().nonnegative().default(10),
  Alerts__MaxRetryCount: z.coerce.number().int().min(0).max(100).default(5),
  Alerts__DeliveryTimeoutSeconds: z.coerce.number().positive().max(60).default(10),
  Alerts__MaxRetryAfterSeconds: z.coerce.number().nonnegative().max(3600).default(60),
  Alerts__MaxQueueWaitSeconds: z.coerce.number().nonnegative().max(60).default(5),
  Alerts__NotifyLeaseSeconds: z.coerce.number().positive().default(120),
  Alerts__RedeliverySchedule: z
    .string()
    .trim()
    .default('0 */1 * * * *')
    .refine(
      isNcrontab,
      'must be an NCRONTAB expression with six fields (second minute hour day month weekday)',
    ),
  Alerts__RedeliveryHorizonHours: z.coerce.number().positive().default(24),
  Alerts__RedeliveryBackoffSeconds: z.coerce.number().positive().max(3600).default(30),

  Ingest__TimestampFields: z
    .string()
    .optional()
    .transform((v) =>
      v === undefined
        ? [...DEFAULT_INGEST_OPTIONS.timestampFields]
        : v
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
    ),
  Ingest__MaxFutureSkewSeconds: z.coerce.number().int().nonnegative().default(300),
  Ingest__EarliestTimestamp: z.iso.datetime({ offset: true }).default('2000-01-01T00:00:00Z'),
  Ingest__MaxRecordBytes: positiveInt(DEFAULT_INGEST_OPTIONS.maxRecordBytes),
  Ingest__MaxDepth: positiveInt(DEFAULT_INGEST_OPTIONS.maxDepth),
  Ingest__MaxFields: positiveInt(DEFAULT_INGEST_OPTIONS.maxFields),
  Ingest__StateWriteConcurrency: positiveInt(16),
  Ingest__StateCacheSize: z.coerce.number().int().nonnegative().default(DEFAULT_STATE_CACHE.size),
  Ingest__StateCacheTtlSeconds: positiveInt(DEFAULT_STATE_CACHE.ttlSeconds),
  Ingest__StateCacheMaxBytes: z.coerce.number().int().nonnegative().default(DEFAULT_STATE_CACHE.maxBytes),
  Ingest__MaxStateFieldsPerSection: positiveInt(DEFAULT_INGEST_OPTIONS.maxStateFieldsPerSection),
  Ingest__MaxRetryCount: z.coerce.number().int().min(0).max(100).default(5),

  Http__MaxBodyBytes: positiveInt(DEFAULT_MAX_BODY_BYTES),
  Http__MaxBulkBodyBytes: positiveInt(DEFAULT_MAX_BULK_BODY_BYTES),

  Concurrency__MaxAttempts: z.coerce.number().int().min(1).max(100).default(DEFAULT_MAX_ATTEMPTS),
});

/** A Functions timer schedule: NCRONTAB with seconds (six fields). */
function isNcrontab(text: string): boolean {
  if (text.split(/\s+/).length !== 6) return false;
  try {
    CronExpressionParser.parse(text, { tz: 'UTC' });
    return true;
  } catch {
    return false;
  }
}

/** Every app setting the function app reads (the README table and local.settings.sample.json list them all). */
export const SETTING_NAMES: readonly string[] = Object.keys(schema.shape);

/** local.settings.sample.json's identity-store key: fine on a laptop, refused in Azure. */
const SAMPLE_ENCRYPTION_KEY = 'bG9jYWwtb25seSBpZGVudGl0eSBrZXksIDMyIGJ5dGU=';

/**
 * Whether the app runs on Azure's Functions hosting: the platform sets WEBSITE_SITE_NAME and WEBSITE_INSTANCE_ID
 * on every instance; Core Tools (`func start`) sets AZURE_FUNCTIONS_ENVIRONMENT=Development, and the embedded
 * local runtime sets neither.
 */
export function isHostedInAzure(env: Record<string, string | undefined>): boolean {
  const platform = (env.WEBSITE_SITE_NAME ?? '') !== '' || (env.WEBSITE_INSTANCE_ID ?? '') !== '';
  return platform && env.AZURE_FUNCTIONS_ENVIRONMENT !== 'Development';
}

type Env = Record<string, string | undefined>;
type SettingProblem = { name: string; message: string };

const hasSetting = (env: Env, name: string) => (env[name] ?? '').trim() !== '';

/** The Event Hubs and archive connections each need a connection string or a managed-identity endpoint. */
function connectionProblems(env: Env): SettingProblem[] {
  const has = (name: string) => hasSetting(env, name);
  const problems: SettingProblem[] = [];
  // A function disabled by the host's own setting needs no connection (local `func start` without Event Hubs).
  const disabled = (name: string) => /^(true|1)$/i.test((env[`AzureWebJobs.${name}.Disabled`] ?? '').trim());
  const eventHubs = [
    ['ingestTelemetry', 'IotHubEventsConnection'],
    ['notifyAnomalies', 'AnomaliesEventHubConnection'],
  ] as const;
  for (const [fn, name] of eventHubs) {
    if (!disabled(fn) && !has(name) && !has(`${name}__fullyQualifiedNamespace`)) {
      problems.push({
        name,
        message: `required (or ${name}__fullyQualifiedNamespace for a managed identity)`,
      });
    }
  }
  if (!has('ArchiveStorageConnectionString') && !has('ArchiveStorage__blobServiceUri')) {
    problems.push({
      name: 'ArchiveStorageConnectionString',
      message: 'required (or ArchiveStorage__blobServiceUri for a managed identity)',
    });
  }
  return problems;
}

/** The identity store has to be chosen in Azure, and each kind needs its own connection (and key). */
function identityStoreProblems(env: Env, hosted: boolean): SettingProblem[] {
  const has = (name: string) => hasSetting(env, name);
  const problems: SettingProblem[] = [];
  // Hosted in Azure, a missing IdentityStore must not quietly become the local stand-ins (Azure Tables, the
  // local job runner, the in-process method channel): it has to be chosen, and never with the sample's key.
  if (hosted && !has('IdentityStore')) {
    problems.push({
      name: 'IdentityStore',
      message:
        'required in Azure (WEBSITE_SITE_NAME/WEBSITE_INSTANCE_ID are set): iothub, or table to run the local stand-ins (Azure Tables identities, the local job runner) on purpose',
    });
  }
  if ((env.IdentityStore ?? 'table') === 'table') {
    if (hosted && env.IdentityStore__EncryptionKey === SAMPLE_ENCRYPTION_KEY) {
      problems.push({
        name: 'IdentityStore__EncryptionKey',
        message:
          "is local.settings.sample.json's well-known key: set your own in Azure (openssl rand -base64 32)",
      });
    }
    if (!has('IdentityStorageConnectionString')) {
      problems.push({
        name: 'IdentityStorageConnectionString',
        message: 'required when IdentityStore is table',
      });
    }
    const key = env.IdentityStore__EncryptionKey ?? '';
    if (Buffer.from(key, 'base64').length !== 32) {
      problems.push({
        name: 'IdentityStore__EncryptionKey',
        message: 'required when IdentityStore is table: 32 random bytes, base64 (openssl rand -base64 32)',
      });
    }
  } else if (!has('IotHubRegistryConnectionString') && !has('IotHubRegistry__hostName')) {
    problems.push({
      name: 'IotHubRegistryConnectionString',
      message: 'required when IdentityStore is iothub (or IotHubRegistry__hostName for a managed identity)',
    });
  }
  return problems;
}

/** A sender starts no message that could outlive its lease, less the part kept for settling. */
function alertLeaseProblems(env: Env): SettingProblem[] {
  const seconds = (name: string, fallback: number) => {
    const n = Number(env[name] ?? fallback);
    return Number.isFinite(n) ? n : fallback;
  };
  const lease = seconds('Alerts__NotifyLeaseSeconds', 120);
  const delivery = seconds('Alerts__DeliveryTimeoutSeconds', 10) + seconds('Alerts__MaxQueueWaitSeconds', 5);
  if (lease - settleReserveMs(lease * 1000) / 1000 > delivery) return [];
  return [
    {
      name: 'Alerts__NotifyLeaseSeconds',
      message: `must be longer than one delivery can take (Alerts__DeliveryTimeoutSeconds + Alerts__MaxQueueWaitSeconds = ${delivery} s) plus min(10 s, a tenth of itself) to settle, or no message fits in a claim`,
    },
  ];
}

/** A self-signed certificate is accepted from a loopback emulator only. */
function selfSignedTlsProblems(env: Env): SettingProblem[] {
  const selfSigned = env.CosmosDbAllowSelfSignedTls === 'true' || env.CosmosDbAllowSelfSignedTls === '1';
  if (!selfSigned || !URL.canParse(env.CosmosDb__accountEndpoint ?? '')) return [];
  const host = new URL(env.CosmosDb__accountEndpoint ?? '').hostname;
  if (loopbackHosts.has(host)) return [];
  return [
    {
      name: 'CosmosDbAllowSelfSignedTls',
      message: 'may only be true when CosmosDb__accountEndpoint is a loopback address (local emulator)',
    },
  ];
}

/**
 * Rules across settings. They run on the raw settings even when a single setting is invalid, so that start-up
 * names every problem at once.
 */
function crossSettingProblems(env: Env): SettingProblem[] {
  const hosted = isHostedInAzure(env);
  return [
    ...connectionProblems(env),
    ...identityStoreProblems(env, hosted),
    ...keysEncryptionKeyProblems(env, hosted),
    ...alertLeaseProblems(env),
    ...selfSignedTlsProblems(env),
  ];
}

/**
 * The key encrypting generated device keys at rest: Provisioning__KeysEncryptionKey, or the table identity
 * store's key when unset (one key to manage in a local run; in Azure, with IdentityStore=iothub, there is no
 * identity-store key and the Bicep sets this one from Key Vault).
 */
const keysEncryptionKeyOf = (env: Record<string, string | undefined>): string =>
  (env.Provisioning__KeysEncryptionKey ?? '').trim() || (env.IdentityStore__EncryptionKey ?? '');

function keysEncryptionKeyProblems(
  env: Record<string, string | undefined>,
  hosted: boolean,
): { name: string; message: string }[] {
  const key = keysEncryptionKeyOf(env);
  if (Buffer.from(key, 'base64').length !== 32) {
    return [
      {
        name: 'Provisioning__KeysEncryptionKey',
        message:
          'required (or IdentityStore__EncryptionKey): 32 random bytes, base64 (openssl rand -base64 32); it encrypts generated device keys at rest',
      },
    ];
  }
  if (hosted && key === SAMPLE_ENCRYPTION_KEY) {
    return [
      {
        name: 'Provisioning__KeysEncryptionKey',
        message:
          "is local.settings.sample.json's well-known key: set your own in Azure (openssl rand -base64 32)",
      },
    ];
  }
  return [];
}

/** The settings as the schema returns them, validated. */
type Settings = z.output<typeof schema>;

/** Every bad setting, each with an example value where one helps. */
function problemLines(env: Env, parsed: ReturnType<typeof schema.safeParse>): string[] {
  const problems = [
    ...(parsed.success
      ? []
      : parsed.error.issues.map((issue) => {
          const name = issue.path.map(String).join('.') || '(settings)';
          return { name, message: env[name] === undefined ? 'required' : issue.message };
        })),
    ...crossSettingProblems(env),
  ];
  return problems.map(({ name, message }) => {
    const example = EXAMPLES[name];
    return `${name}: ${message}${example ? ` (example: ${name}=${example})` : ''}`;
  });
}

const ingestConfig = (s: Settings): AppConfig['ingest'] => ({
  timestampFields: s.Ingest__TimestampFields,
  maxFutureSkewMs: s.Ingest__MaxFutureSkewSeconds * 1000,
  earliestTimestampMs: Date.parse(s.Ingest__EarliestTimestamp),
  maxRecordBytes: s.Ingest__MaxRecordBytes,
  maxDepth: s.Ingest__MaxDepth,
  maxFields: s.Ingest__MaxFields,
  stateWriteConcurrency: s.Ingest__StateWriteConcurrency,
  stateCacheSize: s.Ingest__StateCacheSize,
  stateCacheTtlMs: s.Ingest__StateCacheTtlSeconds * 1000,
  stateCacheMaxBytes: s.Ingest__StateCacheMaxBytes,
  maxStateFieldsPerSection: s.Ingest__MaxStateFieldsPerSection,
  maxRetryCount: s.Ingest__MaxRetryCount,
});

const provisioningConfig = (s: Settings): ProvisioningConfig => ({
  hostName: s.IotHubHostName,
  identityStore:
    s.IdentityStore === 'table'
      ? {
          kind: 'table',
          connectionString: s.IdentityStorageConnectionString ?? '',
          tableName: s.IdentityTableName,
          encryptionKey: s.IdentityStore__EncryptionKey ?? '',
        }
      : s.IotHubRegistryConnectionString
        ? { kind: 'iothub', connectionString: s.IotHubRegistryConnectionString }
        : { kind: 'iothub', hostName: s.IotHubRegistry__hostName ?? '' },
  devicesContainerName: s.CosmosDbDevicesContainerName,
  reconciliationContainerName: s.CosmosDbReconciliationContainerName,
  maxMetadataBytes: s.Provisioning__MaxMetadataBytes,
});

const alertsConfig = (s: Settings): AlertsConfig => ({
  alarmsContainerName: s.CosmosDbAlarmsContainerName,
  slackWebhookUrl: s.SlackWebhookUrl,
  publicApiBaseUrl: s.PublicApiBaseUrl.replace(/\/+$/, ''),
  deviceLinkTemplate: s.Alerts__DeviceLinkTemplate,
  cooldownMs: s.Alerts__CooldownMinutes * 60_000,
  maxRetryCount: s.Alerts__MaxRetryCount,
  deliveryTimeoutMs: s.Alerts__DeliveryTimeoutSeconds * 1000,
  maxRetryAfterMs: s.Alerts__MaxRetryAfterSeconds * 1000,
  maxQueueWaitMs: s.Alerts__MaxQueueWaitSeconds * 1000,
  redeliverySchedule: s.Alerts__RedeliverySchedule,
  outbox: {
    leaseMs: s.Alerts__NotifyLeaseSeconds * 1000,
    horizonMs: s.Alerts__RedeliveryHorizonHours * 3_600_000,
    backoffBaseMs: s.Alerts__RedeliveryBackoffSeconds * 1000,
  },
});

/**
 * A %Setting% binding expression when the setting is there, else the literal default: the host resolves
 * %Setting% from app settings only and does not index a function whose setting is missing.
 */
const bindingValue = (env: Env, name: string, fallback: string) =>
  hasSetting(env, name) ? `%${name}%` : fallback;

const replayConfig = (s: Settings, env: Env): ReplayConfig => ({
  eventHubName: s.ReplayEventHubName ?? DEFAULT_REPLAY_HUB,
  consumerGroup: s.ReplayConsumerGroup ?? DEFAULT_REPLAY_CONSUMER_GROUP,
  binding: {
    eventHubName: bindingValue(env, 'ReplayEventHubName', DEFAULT_REPLAY_HUB),
    consumerGroup: bindingValue(env, 'ReplayConsumerGroup', DEFAULT_REPLAY_CONSUMER_GROUP),
  },
  connected:
    s.ReplayEventHubConnection !== undefined ||
    s.ReplayEventHubConnection__fullyQualifiedNamespace !== undefined,
});

const workflowsConfig = (s: Settings, env: Env): WorkflowsConfig => ({
  hooks: s.Provisioning__Hooks,
  twinTemplates: s.Provisioning__TwinTemplates ?? {},
  registryOpsPerMinute: s.Provisioning__RegistryOpsPerMinute,
  workContainer: s.ProvisioningWorkContainerName,
  resultsContainer: s.ProvisioningResultsContainerName,
  keysEncryptionKey: keysEncryptionKeyOf(env),
  keysRetentionMs: s.Provisioning__KeysRetentionHours * 3_600_000,
  jobsContainerName: s.CosmosDbJobsContainerName,
  jobPollIntervalMs: s.Jobs__PollIntervalSeconds * 1000,
  jobDeviceResultsContainer: s.JobDeviceResultsContainerName,
  maxJobDeviceResults: s.Jobs__MaxDeviceResults,
});

/** Validates the app settings once at start-up; throws ConfigError naming every bad setting. */
export function loadConfig(env: Env = process.env): AppConfig {
  const parsed = schema.safeParse(env);
  const problems = problemLines(env, parsed);
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const s = parsed.data;
  return {
    cosmos: {
      endpoint: s.CosmosDb__accountEndpoint,
      key: s.CosmosDbKey,
      databaseName: s.CosmosDbDatabaseName,
      stateContainerName: s.CosmosDbStateContainerName,
      allowSelfSignedTls: s.CosmosDbAllowSelfSignedTls,
    },
    storage: {
      ...(s.ArchiveStorageConnectionString
        ? { connectionString: s.ArchiveStorageConnectionString }
        : { blobServiceUri: s.ArchiveStorage__blobServiceUri ?? '' }),
      rawArchiveContainer: s.RawArchiveContainerName,
      deadLetterContainer: s.DeadLetterContainerName,
    },
    ingest: ingestConfig(s),
    createResourcesIfMissing: s.CreateResourcesIfMissing,
    provisioning: provisioningConfig(s),
    alerts: alertsConfig(s),
    workflows: workflowsConfig(s, env),
    replay: replayConfig(s, env),
    http: { maxBodyBytes: s.Http__MaxBodyBytes, maxBulkBodyBytes: s.Http__MaxBulkBodyBytes },
    concurrency: { maxAttempts: s.Concurrency__MaxAttempts },
  };
}
