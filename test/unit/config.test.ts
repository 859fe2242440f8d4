import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig, SETTING_NAMES } from '../../src/config.js';
import { ConfigError } from '../../src/shared/errors.js';
import { DEFAULT_INGEST_OPTIONS } from '../../src/telemetry/ingest-options.js';

/** The fewest settings a deployment needs (names as in test/support/local-env.ts and tools/local-services.ts). */
const MINIMAL: Record<string, string> = {
  IotHubEventHubName: 'iothub-events',
  IngestConsumerGroup: 'ingest',
  IotHubEventsConnection:
    'Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=s;SharedAccessKey=k',
  CosmosDb__accountEndpoint: 'https://myaccount.documents.azure.com:443/',
  ArchiveStorageConnectionString: 'UseDevelopmentStorage=true',
  IotHubHostName: 'myhub.azure-devices.net',
  AnomaliesEventHubConnection:
    'Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey=k',
  AnomaliesEventHubName: 'anomalies',
  AnomaliesConsumerGroup: 'notify',
  IdentityStorageConnectionString: 'UseDevelopmentStorage=true',
  IdentityStore__EncryptionKey: Buffer.alloc(32, 7).toString('base64'),
};

const without = (name: string, env: Record<string, string | undefined> = MINIMAL) => {
  const { [name]: _, ...rest } = env;
  return rest;
};

/** The ConfigError thrown for `env`; fails the test if loading succeeds or throws anything else. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('loadConfig accepted the settings');
}

describe('loadConfig', () => {
  it('accepts the minimal settings and fills in the defaults', () => {
    expect(loadConfig(MINIMAL)).toEqual({
      cosmos: {
        endpoint: 'https://myaccount.documents.azure.com:443/',
        key: undefined,
        databaseName: 'iot',
        stateContainerName: 'deviceState',
        allowSelfSignedTls: false,
      },
      storage: {
        connectionString: 'UseDevelopmentStorage=true',
        rawArchiveContainer: 'telemetry-raw',
        deadLetterContainer: 'telemetry-deadletter',
      },
      ingest: {
        timestampFields: [...DEFAULT_INGEST_OPTIONS.timestampFields],
        maxFutureSkewMs: 300_000,
        earliestTimestampMs: Date.UTC(2000, 0, 1),
        maxRecordBytes: DEFAULT_INGEST_OPTIONS.maxRecordBytes,
        maxDepth: DEFAULT_INGEST_OPTIONS.maxDepth,
        maxFields: DEFAULT_INGEST_OPTIONS.maxFields,
        stateWriteConcurrency: 16,
        stateCacheSize: 10_000,
        stateCacheTtlMs: 300_000,
        stateCacheMaxBytes: 268_435_456,
        maxStateFieldsPerSection: DEFAULT_INGEST_OPTIONS.maxStateFieldsPerSection,
        maxRetryCount: 5,
      },
      createResourcesIfMissing: false,
      provisioning: {
        hostName: 'myhub.azure-devices.net',
        identityStore: {
          kind: 'table',
          connectionString: 'UseDevelopmentStorage=true',
          tableName: 'identities',
          encryptionKey: Buffer.alloc(32, 7).toString('base64'),
        },
        devicesContainerName: 'devices',
        reconciliationContainerName: 'reconciliation',
        maxMetadataBytes: 8192,
      },
      alerts: {
        alarmsContainerName: 'alarms',
        slackWebhookUrl: undefined,
        publicApiBaseUrl: 'http://localhost:7071/api',
        cooldownMs: 600_000,
        maxRetryCount: 5,
        deliveryTimeoutMs: 10_000,
        maxRetryAfterMs: 60_000,
        maxQueueWaitMs: 5_000,

        redeliverySchedule: '0 */1 * * * *',
        outbox: { leaseMs: 120_000, horizonMs: 24 * 3_600_000, backoffBaseMs: 30_000 },
      },
      workflows: {
        hooks: [],
        twinTemplates: {},
        registryOpsPerMinute: 100,
        workContainer: 'provisioning-work',
        resultsContainer: 'provisioning-results',
        keysEncryptionKey: MINIMAL.IdentityStore__EncryptionKey,
        keysRetentionMs: 24 * 3_600_000,
        jobsContainerName: 'jobs',
        jobPollIntervalMs: 30_000,
        jobDeviceResultsContainer: 'job-device-results',
        maxJobDeviceResults: 10_000,
      },
      replay: {
        eventHubName: 'replay',
        consumerGroup: 'replay',
        binding: { eventHubName: 'replay', consumerGroup: 'replay' },
        connected: false,
      },
      http: { maxBodyBytes: 1024 * 1024, maxBulkBodyBytes: 16 * 1024 * 1024 },
      concurrency: { maxAttempts: 10 },
    });
  });

  it('reads the provisioning hooks and twin templates, and names a malformed one', () => {
    const config = loadConfig({
      ...MINIMAL,
      Provisioning__Hooks: ' https://sim.example.com/a , https://billing.example.com/b?code=x ',
      Provisioning__TwinTemplates: '{"t1":{"interval":5}}',
    });
    expect(config.workflows.hooks).toEqual([
      'https://sim.example.com/a',
      'https://billing.example.com/b?code=x',
    ]);
    expect(config.workflows.twinTemplates).toEqual({ t1: { interval: 5 } });
    expect(() => loadConfig({ ...MINIMAL, Provisioning__Hooks: 'ftp://nope' })).toThrow(
      /Provisioning__Hooks/,
    );
    expect(() => loadConfig({ ...MINIMAL, Provisioning__TwinTemplates: '{oops' })).toThrow(
      /Provisioning__TwinTemplates: must be a JSON object/,
    );
    expect(() => loadConfig({ ...MINIMAL, Provisioning__TwinTemplates: '{"t1":3}' })).toThrow(
      /Provisioning__TwinTemplates/,
    );
  });

  it('refuses the table identity store without a 32-byte encryption key, and IoT Hub mode without a registry', () => {
    expect(() => loadConfig({ ...MINIMAL, IdentityStore__EncryptionKey: 'c2hvcnQ=' })).toThrow(
      /IdentityStore__EncryptionKey: required when IdentityStore is table/,
    );
    expect(() => loadConfig({ ...MINIMAL, IdentityStore: 'iothub' })).toThrow(
      /IotHubRegistryConnectionString/,
    );
    expect(
      loadConfig({ ...MINIMAL, IdentityStore: 'iothub', IotHubRegistry__hostName: 'h.azure-devices.net' })
        .provisioning.identityStore,
    ).toEqual({
      kind: 'iothub',
      hostName: 'h.azure-devices.net',
    });
  });

  it('takes the device keys encryption key from Provisioning__KeysEncryptionKey, else the identity store key', () => {
    const own = Buffer.alloc(32, 9).toString('base64');
    const iothub = {
      ...without('IdentityStore__EncryptionKey'),
      IdentityStore: 'iothub',
      IotHubRegistry__hostName: 'h',
    };
    expect(() => loadConfig(iothub)).toThrow(
      /Provisioning__KeysEncryptionKey: required \(or IdentityStore__EncryptionKey\)/,
    );
    expect(() => loadConfig({ ...iothub, Provisioning__KeysEncryptionKey: 'c2hvcnQ=' })).toThrow(
      /Provisioning__KeysEncryptionKey: required/,
    );
    expect(loadConfig({ ...iothub, Provisioning__KeysEncryptionKey: own }).workflows.keysEncryptionKey).toBe(
      own,
    );
    expect(loadConfig({ ...MINIMAL, Provisioning__KeysEncryptionKey: own }).workflows.keysEncryptionKey).toBe(
      own,
    );
    expect(
      loadConfig({ ...MINIMAL, Provisioning__KeysRetentionHours: '1.5' }).workflows.keysRetentionMs,
    ).toBe(5_400_000);
    expect(() => loadConfig({ ...MINIMAL, Provisioning__KeysRetentionHours: '0' })).toThrow(
      /Provisioning__KeysRetentionHours/,
    );
  });

  it('ignores unrelated environment variables', () => {
    expect(() =>
      loadConfig({ ...MINIMAL, PATH: '/usr/bin', FUNCTIONS_WORKER_RUNTIME: 'node' }),
    ).not.toThrow();
  });

  it('accepts a managed identity instead of connection strings', () => {
    const config = loadConfig({
      ...without('ArchiveStorageConnectionString', without('IotHubEventsConnection')),
      IotHubEventsConnection__fullyQualifiedNamespace: 'myhub.servicebus.windows.net',
      ArchiveStorage__blobServiceUri: 'https://mystorage.blob.core.windows.net',
    });
    expect(config.storage).toEqual({
      blobServiceUri: 'https://mystorage.blob.core.windows.net',
      rawArchiveContainer: 'telemetry-raw',
      deadLetterContainer: 'telemetry-deadletter',
    });
    expect(config.cosmos.key).toBeUndefined();
  });

  it('refuses a missing CosmosDb__accountEndpoint, naming it and showing an example', () => {
    const error = configError(without('CosmosDb__accountEndpoint'));
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain('CosmosDb__accountEndpoint');
    expect(error.problems[0]).toContain('required');
    expect(error.message).toContain(
      'example: CosmosDb__accountEndpoint=https://myaccount.documents.azure.com:443/',
    );
  });

  it('refuses an endpoint that is not an http(s) URL', () => {
    for (const endpoint of ['myaccount.documents.azure.com', 'ftp://myaccount.documents.azure.com/']) {
      expect(configError({ ...MINIMAL, CosmosDb__accountEndpoint: endpoint }).message).toContain(
        'CosmosDb__accountEndpoint',
      );
    }
  });

  it('refuses self-signed TLS for a remote Cosmos DB endpoint', () => {
    const error = configError({ ...MINIMAL, CosmosDbAllowSelfSignedTls: 'true' });
    expect(error.message).toContain('CosmosDbAllowSelfSignedTls');
    expect(error.message).toContain('loopback');
    expect(() =>
      loadConfig({
        ...MINIMAL,
        CosmosDb__accountEndpoint: 'https://localhost.attacker.example:8081/',
        CosmosDbAllowSelfSignedTls: '1',
      }),
    ).toThrow(ConfigError);
  });

  it.each(['https://localhost:8081/', 'https://127.0.0.1:8081/', 'https://[::1]:8081/'])(
    'allows self-signed TLS for the loopback endpoint %s',
    (endpoint) => {
      const config = loadConfig({
        ...MINIMAL,
        CosmosDb__accountEndpoint: endpoint,
        CosmosDbAllowSelfSignedTls: 'true',
      });
      expect(config.cosmos.allowSelfSignedTls).toBe(true);
    },
  );

  it('refuses missing archive storage, naming both ways to configure it', () => {
    const error = configError(without('ArchiveStorageConnectionString'));
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^ArchiveStorageConnectionString: /);
    expect(error.problems[0]).toContain('ArchiveStorage__blobServiceUri');
    expect(error.problems[0]).toContain('example: ArchiveStorageConnectionString=UseDevelopmentStorage=true');
  });

  it('refuses a missing IoT Hub connection', () => {
    const error = configError(without('IotHubEventsConnection'));
    expect(error.problems[0]).toMatch(
      /^IotHubEventsConnection: .*IotHubEventsConnection__fullyQualifiedNamespace/,
    );
  });

  it('names every missing required setting at once', () => {
    const error = configError(without('IotHubEventHubName', without('IngestConsumerGroup')));
    expect(error.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'IngestConsumerGroup',
      'IotHubEventHubName',
    ]);
  });

  it('requires every setting a %Setting% binding expression reads (the host does not index without it)', () => {
    // Before issue 15 AnomaliesEventHubName / AnomaliesConsumerGroup defaulted here, hiding what the host refuses.
    const error = configError(without('AnomaliesEventHubName', without('AnomaliesConsumerGroup')));
    expect(error.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'AnomaliesConsumerGroup',
      'AnomaliesEventHubName',
    ]);
    expect(configError({ ...MINIMAL, AnomaliesConsumerGroup: '' }).message).toMatch(
      /AnomaliesConsumerGroup: .*example: AnomaliesConsumerGroup=notify/,
    );
  });

  it('reads Alerts__DeviceLinkTemplate, the only link of an alert, and refuses one without {deviceId}', () => {
    expect(loadConfig(MINIMAL).alerts.deviceLinkTemplate).toBeUndefined();
    const template = 'https://console.example.com/devices/{deviceId}';
    expect(loadConfig({ ...MINIMAL, Alerts__DeviceLinkTemplate: template }).alerts.deviceLinkTemplate).toBe(
      template,
    );
    expect(
      configError({ ...MINIMAL, Alerts__DeviceLinkTemplate: 'https://console.example.com/' }).message,
    ).toMatch(/Alerts__DeviceLinkTemplate: must contain \{deviceId\}/);
    expect(configError({ ...MINIMAL, Alerts__DeviceLinkTemplate: 'ftp://x/{deviceId}' }).message).toMatch(
      /Alerts__DeviceLinkTemplate: must be an http\(s\) URL/,
    );
  });

  it('parses Ingest__TimestampFields as a comma-separated list', () => {
    const config = loadConfig({ ...MINIMAL, Ingest__TimestampFields: ' deviceTime, ts ,,measuredAt ' });
    expect(config.ingest.timestampFields).toEqual(['deviceTime', 'ts', 'measuredAt']);
  });

  it('reads the numeric ingest limits and the earliest timestamp', () => {
    const config = loadConfig({
      ...MINIMAL,
      Ingest__MaxFutureSkewSeconds: '60',
      Ingest__EarliestTimestamp: '2020-01-01T01:00:00+01:00',
      Ingest__MaxRecordBytes: '1024',
      Ingest__MaxDepth: '4',
      Ingest__MaxFields: '50',
      Ingest__StateWriteConcurrency: '2',
      Ingest__MaxRetryCount: '0',
    });
    expect(config.ingest).toMatchObject({
      maxFutureSkewMs: 60_000,
      earliestTimestampMs: Date.UTC(2020, 0, 1),
      maxRecordBytes: 1024,
      maxDepth: 4,
      maxFields: 50,
      stateWriteConcurrency: 2,
      maxRetryCount: 0,
    });
  });

  it.each([
    ['Ingest__MaxDepth', 'deep'],
    ['Ingest__MaxDepth', '0'],
    ['Ingest__MaxDepth', '2.5'],
    ['Ingest__MaxFields', '-1'],
    ['Ingest__MaxRetryCount', '101'],
    ['Ingest__EarliestTimestamp', 'last year'],
    ['CosmosDbAllowSelfSignedTls', 'yes'],
    ['Concurrency__MaxAttempts', '0'],
    ['Concurrency__MaxAttempts', 'many'],
  ])('refuses %s=%s, naming the setting', (name, value) => {
    const error = configError({ ...MINIMAL, [name]: value });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(new RegExp(`^${name}: `));
  });

  it('reads the optimistic-concurrency attempt limit (Concurrency__MaxAttempts)', () => {
    expect(loadConfig({ ...MINIMAL, Concurrency__MaxAttempts: '3' }).concurrency).toEqual({ maxAttempts: 3 });
  });

  it('reads the boolean settings', () => {
    expect(loadConfig({ ...MINIMAL, CreateResourcesIfMissing: 'true' }).createResourcesIfMissing).toBe(true);
    expect(loadConfig({ ...MINIMAL, CreateResourcesIfMissing: '1' }).createResourcesIfMissing).toBe(true);
    expect(loadConfig({ ...MINIMAL, CreateResourcesIfMissing: 'false' }).createResourcesIfMissing).toBe(
      false,
    );
    expect(loadConfig({ ...MINIMAL, CreateResourcesIfMissing: '' }).createResourcesIfMissing).toBe(false);
  });

  // Regression: cross-setting rules used to be skipped as soon as any single setting was invalid.
  it('reads the alert delivery settings, and refuses a lease no longer than one delivery or a bad schedule', () => {
    const alerts = loadConfig({
      ...MINIMAL,
      Alerts__MaxRetryCount: '8',
      Alerts__DeliveryTimeoutSeconds: '3',
      Alerts__MaxRetryAfterSeconds: '30',
      Alerts__MaxQueueWaitSeconds: '2',
      Alerts__NotifyLeaseSeconds: '60',
      Alerts__RedeliverySchedule: '0 */5 * * * *',
      Alerts__RedeliveryHorizonHours: '6',
      Alerts__RedeliveryBackoffSeconds: '2',
    }).alerts;
    expect(alerts).toMatchObject({
      maxRetryCount: 8,
      deliveryTimeoutMs: 3000,
      maxRetryAfterMs: 30_000,
      maxQueueWaitMs: 2000,
      redeliverySchedule: '0 */5 * * * *',
      outbox: { leaseMs: 60_000, horizonMs: 6 * 3_600_000, backoffBaseMs: 2000 },
    });
    const names = (env: Record<string, string>) =>
      configError({ ...MINIMAL, ...env }).problems.map((p) => p.split(':')[0]);
    expect(names({ Alerts__NotifyLeaseSeconds: '15' })).toEqual(['Alerts__NotifyLeaseSeconds']);
    expect(names({ Alerts__RedeliverySchedule: '*/5 * * * *' })).toEqual(['Alerts__RedeliverySchedule']);
    expect(names({ Alerts__MaxRetryCount: '-1' })).toEqual(['Alerts__MaxRetryCount']);
  });

  it('names a cross-setting problem even when another setting is also bad', () => {
    const error = configError({ ...without('ArchiveStorageConnectionString'), Ingest__MaxDepth: 'deep' });
    expect(error.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'ArchiveStorageConnectionString',
      'Ingest__MaxDepth',
    ]);
  });
});

describe('local.settings.sample.json', () => {
  const sample = JSON.parse(
    readFileSync(new URL('../../local.settings.sample.json', import.meta.url), 'utf8'),
  ) as {
    Values: Record<string, string>;
  };
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  // The managed-identity forms are Azure's (the local run uses keys): the README lists them, the sample not.
  const identityBased = (n: string) => /__(fullyQualifiedNamespace|blobServiceUri|hostName)$/.test(n);
  it.each(SETTING_NAMES.filter((n) => !identityBased(n)))('lists %s, and so does the README', (name) => {
    expect(Object.keys(sample.Values)).toContain(name);
    expect(readme).toContain(`| \`${name}\``);
  });

  it.each(SETTING_NAMES.filter(identityBased))('has a README row for %s', (name) => {
    expect(readme).toContain(`| \`${name}\``);
  });

  it.each(SETTING_NAMES.filter(identityBased))('takes an empty %s as unset', (name) => {
    expect(() => loadConfig({ ...sample.Values, [name]: '' })).not.toThrow();
  });

  it('is a valid configuration as it stands', () => {
    expect(() => loadConfig(sample.Values)).not.toThrow();
  });
});

describe('hosted in Azure: no silent fallback to the local stand-ins', () => {
  const sample = JSON.parse(
    readFileSync(new URL('../../local.settings.sample.json', import.meta.url), 'utf8'),
  ) as { Values: Record<string, string> };
  const AZURE = { WEBSITE_SITE_NAME: 'iot-func-abc', WEBSITE_INSTANCE_ID: 'f00d' };
  const names = (env: Record<string, string | undefined>) =>
    configError(env).problems.map((p) => p.split(':')[0]);

  it('refuses a missing IdentityStore instead of defaulting to Azure Tables and the local job runner', () => {
    expect(names({ ...MINIMAL, ...AZURE })).toEqual(['IdentityStore']);
    expect(configError({ ...MINIMAL, ...AZURE }).message).toMatch(/IdentityStore: required in Azure/);
  });

  it("refuses the sample's well-known encryption key", () => {
    // The device keys' encryption key falls back to it, so both are refused.
    expect(names({ ...sample.Values, ...AZURE })).toEqual([
      'IdentityStore__EncryptionKey',
      'Provisioning__KeysEncryptionKey',
    ]);
  });

  it('accepts the table store in Azure when chosen on purpose with a key of its own', () => {
    expect(
      loadConfig({ ...MINIMAL, ...AZURE, IdentityStore: 'table' }).provisioning.identityStore,
    ).toMatchObject({
      kind: 'table',
    });
  });

  it('keeps the local defaults on a laptop: the embedded runtime, and func start (Development)', () => {
    expect(loadConfig(MINIMAL).provisioning.identityStore).toMatchObject({ kind: 'table' });
    expect(() => loadConfig({ ...sample.Values })).not.toThrow();
    expect(() =>
      loadConfig({ ...sample.Values, ...AZURE, AZURE_FUNCTIONS_ENVIRONMENT: 'Development' }),
    ).not.toThrow();
  });
});

describe('loadConfig with an Event Hub trigger disabled by the host setting (func start without Event Hubs)', () => {
  it('needs no connection for a trigger disabled with AzureWebJobs.<name>.Disabled', () => {
    const env = {
      ...without('AnomaliesEventHubConnection', without('IotHubEventsConnection')),
      'AzureWebJobs.ingestTelemetry.Disabled': 'true',
      'AzureWebJobs.notifyAnomalies.Disabled': '1',
    };
    expect(() => loadConfig(env)).not.toThrow();
  });

  it('still needs the connection of a trigger that is not disabled', () => {
    const error = configError({
      ...without('AnomaliesEventHubConnection', without('IotHubEventsConnection')),
      'AzureWebJobs.ingestTelemetry.Disabled': 'true',
      'AzureWebJobs.notifyAnomalies.Disabled': 'false',
    });
    expect(error.message).toMatch(/AnomaliesEventHubConnection/);
    expect(error.message).not.toMatch(/IotHubEventsConnection:/);
  });
});
