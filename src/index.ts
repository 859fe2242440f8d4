/**
 * Composition root: the only module that calls `app.*`. It validates configuration, builds the adapters
 * (one SDK client per service), and registers every function with its handler factory.
 */
import { app } from '@azure/functions';
import * as df from 'durable-functions';
import { makeAlarmHandlers } from './alerts/http-handlers.js';
import { makeNotifyAnomalies } from './alerts/notify-anomalies.js';
import { makeRedeliverAlerts } from './alerts/redeliver-alerts.js';
import { loadConfig } from './config.js';
import { makeGetHealth } from './health/health.js';
import { getOpenApiDocument } from './http/openapi.js';
import { withProblemDetails } from './http/problem.js';
import { createAdapters } from './infra/adapters.js';
import { withWorkflowClient } from './infra/durable/durable-workflow-client.js';
import { makeJobHandlers } from './jobs/http-handlers.js';
import {
  SCHEDULED_JOB,
  makeScheduledJobActivities,
  scheduledJobOrchestrator,
} from './jobs/scheduled-job-workflow.js';
import {
  BULK_PROVISION,
  BULK_PROVISION_CHUNK,
  bulkProvisionChunkOrchestrator,
  bulkProvisionOrchestrator,
} from './provisioning/bulk-provisioning-workflow.js';
import { makeBulkProvisioningActivities } from './provisioning/bulk-provisioning-activities.js';
import {
  PROVISION_DEVICE,
  makeProvisionDeviceActivities,
  provisionDeviceOrchestrator,
} from './provisioning/provision-device-workflow.js';
import { makeWorkflowHandlers } from './provisioning/workflow-http-handlers.js';
import { makeProvisioningHandlers } from './provisioning/http-handlers.js';
import { ProvisioningService } from './provisioning/provisioning-service.js';
import { PURGE_EXPIRED_KEYS_SCHEDULE, makePurgeExpiredDeviceKeys } from './provisioning/result-keys.js';
import { makeGetDeviceState } from './telemetry/get-device-state.js';
import { makeIngestTelemetry } from './telemetry/ingest-telemetry.js';

/** The validated configuration and the adapters of this process (the embedded local runtime reuses both). */
export const config = loadConfig();
export const adapters = createAdapters(config);
const {
  stateStore,
  archive,
  deadLetters,
  identities,
  twins,
  registry,
  orphans,
  alarms,
  notifier,
  work,
  results,
  keysCipher,
  hooks,
  jobs,
  jobRunner,
  jobDeviceResults,
  jobNotifier,
  health,
} = adapters;
const alarmHandlers = makeAlarmHandlers(alarms);
const service = new ProvisioningService({
  identities,
  twins,
  registry,
  stateStore,
  orphans,
  hostName: config.provisioning.hostName,
  maxMetadataBytes: config.provisioning.maxMetadataBytes,
});
const provisioning = makeProvisioningHandlers(service, { maxBodyBytes: config.http.maxBodyBytes });
const workflowHandlers = makeWorkflowHandlers({
  identities,
  work,
  results,
  keysCipher,
  hooks: config.workflows.hooks,
  registryOpsPerMinute: config.workflows.registryOpsPerMinute,
  maxMetadataBytes: config.provisioning.maxMetadataBytes,
  maxBodyBytes: config.http.maxBodyBytes,
  maxBulkBodyBytes: config.http.maxBulkBodyBytes,
});
const jobHandlers = makeJobHandlers({
  jobs,
  deviceResults: jobDeviceResults,
  pollIntervalMs: config.workflows.jobPollIntervalMs,
  maxBodyBytes: config.http.maxBodyBytes,
});
const resultsContainer = config.workflows.resultsContainer;
const activities = {
  ...makeProvisionDeviceActivities({
    identities,
    registry,
    twins,
    service,
    hooks,
    hookUrls: config.workflows.hooks,
    work,
    results,
    resultsContainer,
    cipher: keysCipher,
    keysRetentionMs: config.workflows.keysRetentionMs,
    twinTemplates: config.workflows.twinTemplates,
    hostName: config.provisioning.hostName,
  }),
  ...makeBulkProvisioningActivities({
    identities,
    registry,
    work,
    results,
    resultsContainer,
    hostName: config.provisioning.hostName,
    cipher: keysCipher,
    keysRetentionMs: config.workflows.keysRetentionMs,
  }),
  ...makeScheduledJobActivities({
    runner: jobRunner,
    registry,
    jobs,
    notifier: jobNotifier,
    deviceResults: jobDeviceResults,
    maxDeviceResults: config.workflows.maxJobDeviceResults,
  }),
};

/**
 * Event bodies as bytes. Without a dataType, the host JSON-converts each event of a `cardinality: 'many'` batch
 * and fails the whole invocation on one non-JSON body, and re-serializes numbers; we parse (once) ourselves.
 * Not in the typed trigger options, so spread in: the library copies every trigger option into the binding.
 */
const BINARY_EVENTS = { dataType: 'binary' } as const;

app.eventHub('ingestTelemetry', {
  ...BINARY_EVENTS,
  connection: 'IotHubEventsConnection',
  eventHubName: '%IotHubEventHubName%',
  consumerGroup: '%IngestConsumerGroup%',
  cardinality: 'many',
  retry: {
    strategy: 'exponentialBackoff',
    maxRetryCount: config.ingest.maxRetryCount,
    minimumInterval: { seconds: 2 },
    maximumInterval: { minutes: 2 },
  },
  handler: makeIngestTelemetry({ stateStore, archive, deadLetters, options: config.ingest }),
});

app.http('getDeviceState', {
  route: 'devices/{id}/state',
  methods: ['GET'],
  authLevel: 'function',
  handler: withProblemDetails(makeGetDeviceState({ stateStore })),
});

// Provisioning API (seed 002 §3.4). Function keys guard every route in Azure.
app.http('registerDevice', {
  route: 'devices',
  methods: ['POST'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.registerDevice),
});
app.http('listDevices', {
  route: 'devices',
  methods: ['GET'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.listDevices),
});
app.http('getDevice', {
  route: 'devices/{id}',
  methods: ['GET'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.getDevice),
});
app.http('updateDevice', {
  route: 'devices/{id}',
  methods: ['PATCH'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.updateDevice),
});
app.http('unregisterDevice', {
  route: 'devices/{id}',
  methods: ['DELETE'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.unregisterDevice),
});
app.http('activateDevice', {
  route: 'devices/{id}/activate',
  methods: ['POST'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.activateDevice),
});
app.http('deactivateDevice', {
  route: 'devices/{id}/deactivate',
  methods: ['POST'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.deactivateDevice),
});
app.http('resetDeviceCredentials', {
  route: 'devices/{id}/reset-credentials',
  methods: ['POST'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.resetCredentials),
});
app.http('getDeviceTwin', {
  route: 'devices/{id}/twin',
  methods: ['GET'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.getDeviceTwin),
});
app.http('updateDeviceTwin', {
  route: 'devices/{id}/twin',
  methods: ['PATCH'],
  authLevel: 'function',
  handler: withProblemDetails(provisioning.updateDeviceTwin),
});

// Hot path: anomalies from Stream Analytics → alarms → Slack (or the log).
app.eventHub('notifyAnomalies', {
  ...BINARY_EVENTS,
  connection: 'AnomaliesEventHubConnection',
  eventHubName: '%AnomaliesEventHubName%',
  consumerGroup: '%AnomaliesConsumerGroup%',
  cardinality: 'many',
  retry: {
    strategy: 'exponentialBackoff',
    maxRetryCount: config.alerts.maxRetryCount,
    minimumInterval: { seconds: 2 },
    maximumInterval: { minutes: 2 },
  },
  handler: makeNotifyAnomalies({
    alarms,
    notifier,
    deadLetters,
    cooldownMs: config.alerts.cooldownMs,
    maxRetryCount: config.alerts.maxRetryCount,
    outbox: config.alerts.outbox,
  }),
});
// The alerts' outbox: notifications still pending (Slack down, rate-limited, a sender died) go out as a digest.
app.timer('redeliverAlerts', {
  schedule: config.alerts.redeliverySchedule,
  handler: makeRedeliverAlerts({
    alarms,
    notifier,
    outbox: config.alerts.outbox,
  }),
});
app.http('listAlarms', {
  route: 'alarms',
  methods: ['GET'],
  authLevel: 'function',
  handler: withProblemDetails(alarmHandlers.listAlarms),
});
app.http('acknowledgeAlarm', {
  route: 'alarms/{id}/acknowledge',
  methods: ['POST'],
  authLevel: 'function',
  handler: withProblemDetails(alarmHandlers.acknowledgeAlarm),
});
app.http('closeAlarm', {
  route: 'alarms/{id}/close',
  methods: ['POST'],
  authLevel: 'function',
  handler: withProblemDetails(alarmHandlers.closeAlarm),
});

// Anonymous, cheap and cached: for load balancers, availability tests and the local start-up banner.
app.http('getHealth', {
  route: 'health',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: withProblemDetails(makeGetHealth({ probes: health })),
});

app.http('openApiDocument', {
  route: 'openapi.json',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: withProblemDetails(getOpenApiDocument),
});

// Durable workflows: provisioning (single and bulk) and scheduled twin/method jobs.
df.app.orchestration(PROVISION_DEVICE, provisionDeviceOrchestrator);
df.app.orchestration(BULK_PROVISION, bulkProvisionOrchestrator);
df.app.orchestration(BULK_PROVISION_CHUNK, bulkProvisionChunkOrchestrator);
df.app.orchestration(SCHEDULED_JOB, scheduledJobOrchestrator);
for (const [name, handler] of Object.entries(activities)) df.app.activity(name, { handler });

app.http('startProvisioning', {
  route: 'provisioning/devices',
  methods: ['POST'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(workflowHandlers.startProvisioning)),
});
app.http('startBulkProvisioning', {
  route: 'provisioning/bulk',
  methods: ['POST'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(workflowHandlers.startBulkProvisioning)),
});
app.http('getProvisioning', {
  route: 'provisioning/{instanceId}',
  methods: ['GET'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(workflowHandlers.getProvisioning)),
});
app.http('cancelProvisioning', {
  route: 'provisioning/{instanceId}/cancel',
  methods: ['POST'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(workflowHandlers.cancelProvisioning)),
});
app.http('getProvisioningResults', {
  route: 'provisioning/{instanceId}/results',
  methods: ['GET'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(workflowHandlers.getProvisioningResults)),
});
// Device keys in provisioning results are kept for Provisioning__KeysRetentionHours, then removed.
app.timer('purgeExpiredDeviceKeys', {
  schedule: PURGE_EXPIRED_KEYS_SCHEDULE,
  handler: makePurgeExpiredDeviceKeys({ results }),
});
app.http('createJob', {
  route: 'jobs',
  methods: ['POST'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(jobHandlers.createJob)),
});
app.http('listJobs', {
  route: 'jobs',
  methods: ['GET'],
  authLevel: 'function',
  handler: withProblemDetails(jobHandlers.listJobs),
});
app.http('getJob', {
  route: 'jobs/{id}',
  methods: ['GET'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(jobHandlers.getJob)),
});
app.http('cancelJobPost', {
  route: 'jobs/{id}/cancel',
  methods: ['POST'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(jobHandlers.cancelJob)),
});
// The earlier cancel route, kept as an alias of POST jobs/{id}/cancel.
app.http('cancelJob', {
  route: 'jobs/{id}',
  methods: ['DELETE'],
  authLevel: 'function',
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(jobHandlers.cancelJob)),
});
app.http('listJobDevices', {
  route: 'jobs/{id}/devices',
  methods: ['GET'],
  authLevel: 'function',
  handler: withProblemDetails(jobHandlers.listJobDevices),
});
