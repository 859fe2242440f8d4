/**
 * Composition root: the only module that calls `app.*`. It validates configuration, builds the adapters
 * (one SDK client per service), and registers every function with its handler factory.
 */
import { app, type FunctionInput, type HttpHandler } from '@azure/functions';
import * as df from 'durable-functions';
import { makeAlarmHandlers } from './alerts/http-handlers.js';
import { makeNotifyAnomalies } from './alerts/notify-anomalies.js';
import { makeRedeliverAlerts } from './alerts/redeliver-alerts.js';
import { loadConfig } from './config.js';
import { makeGetHealth } from './health/health.js';
import { API_ROUTES, getOpenApiDocument } from './http/openapi.js';
import { withProblemDetails } from './http/problem.js';
import { createAdapters } from './infra/adapters.js';
import { withWorkflowClient } from './infra/durable/durable-workflow-client.js';
import type { ApiRequest, ApiResponse } from './shared/api-request.js';
import type { WorkflowClient } from './shared/workflows.js';
import { makeJobHandlers } from './jobs/http-handlers.js';
import { makeScheduledJobActivities } from './jobs/scheduled-job-activities.js';
import { SCHEDULED_JOB, scheduledJobOrchestrator } from './jobs/scheduled-job-workflow.js';
import {
  BULK_PROVISION,
  BULK_PROVISION_CHUNK,
  bulkProvisionChunkOrchestrator,
  bulkProvisionOrchestrator,
} from './provisioning/bulk-provisioning-workflow.js';
import { makeBulkProvisioningActivities } from './provisioning/bulk-provisioning-activities.js';
import { makeProvisionDeviceActivities } from './provisioning/provision-device-activities.js';
import { PROVISION_DEVICE, provisionDeviceOrchestrator } from './provisioning/provision-device-workflow.js';
import { makeWorkflowHandlers } from './provisioning/workflow-http-handlers.js';
import { makeProvisioningHandlers } from './provisioning/http-handlers.js';
import { ProvisioningService } from './provisioning/provisioning-service.js';
import { PURGE_EXPIRED_KEYS_SCHEDULE, makePurgeExpiredDeviceKeys } from './provisioning/result-keys.js';
import { makeGetDeviceState } from './telemetry/get-device-state.js';
import { makeIngestTelemetry } from './telemetry/ingest-telemetry.js';
import { makeReplayTelemetry } from './telemetry/replay-telemetry.js';

/** The validated configuration and the adapters of this process (the embedded local runtime reuses both). */
export const config = loadConfig();
export const adapters = createAdapters(config);
const {
  stateStore,
  archive,
  deadLetters,
  identities,
  twins,
  catalog,
  orphans,
  alarms,
  notifier,
  work,
  results,
  keysCipher,
  hooks,
  scheduledJobs,
  hubJobRunner,
  jobDeviceResults,
  jobNotifier,
  health,
} = adapters;
const alarmHandlers = makeAlarmHandlers(alarms);
const service = new ProvisioningService({
  identities,
  twins,
  catalog,
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
  scheduledJobs,
  deviceResults: jobDeviceResults,
  pollIntervalMs: config.workflows.jobPollIntervalMs,
  maxBodyBytes: config.http.maxBodyBytes,
});
const resultsContainer = config.workflows.resultsContainer;
const activities = {
  ...makeProvisionDeviceActivities({
    identities,
    catalog,
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
    catalog,
    work,
    results,
    resultsContainer,
    hostName: config.provisioning.hostName,
    cipher: keysCipher,
    keysRetentionMs: config.workflows.keysRetentionMs,
  }),
  ...makeScheduledJobActivities({
    runner: hubJobRunner,
    catalog,
    scheduledJobs,
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

/** Retries of a failed event batch, up to `maxRetryCount` times, 2 s to 2 min apart. */
const batchRetry = (maxRetryCount: number) =>
  ({
    strategy: 'exponentialBackoff',
    maxRetryCount,
    minimumInterval: { seconds: 2 },
    maximumInterval: { minutes: 2 },
  }) as const;

app.eventHub('ingestTelemetry', {
  ...BINARY_EVENTS,
  connection: 'IotHubEventsConnection',
  eventHubName: '%IotHubEventHubName%',
  consumerGroup: '%IngestConsumerGroup%',
  cardinality: 'many',
  retry: batchRetry(config.ingest.maxRetryCount),
  handler: makeIngestTelemetry({ stateStore, archive, deadLetters, options: config.ingest }),
});

// Replay and backfill from the raw archive (npm run replay, docs/adr/0013): the same pipeline, no archive write.
app.eventHub('replayTelemetry', {
  ...BINARY_EVENTS,
  connection: 'ReplayEventHubConnection',
  eventHubName: config.replay.binding.eventHubName,
  consumerGroup: config.replay.binding.consumerGroup,
  cardinality: 'many',
  retry: batchRetry(config.ingest.maxRetryCount),
  handler: makeReplayTelemetry({ stateStore, deadLetters, options: config.ingest }),
});

// Hot path: anomalies from Stream Analytics → alarms → Slack (or the log).
app.eventHub('notifyAnomalies', {
  ...BINARY_EVENTS,
  connection: 'AnomaliesEventHubConnection',
  eventHubName: '%AnomaliesEventHubName%',
  consumerGroup: '%AnomaliesConsumerGroup%',
  cardinality: 'many',
  retry: batchRetry(config.alerts.maxRetryCount),
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

// Durable workflows: provisioning (single and bulk) and scheduled twin/method jobs.
df.app.orchestration(PROVISION_DEVICE, provisionDeviceOrchestrator);
df.app.orchestration(BULK_PROVISION, bulkProvisionOrchestrator);
df.app.orchestration(BULK_PROVISION_CHUNK, bulkProvisionChunkOrchestrator);
df.app.orchestration(SCHEDULED_JOB, scheduledJobOrchestrator);
for (const [name, handler] of Object.entries(activities)) df.app.activity(name, { handler });

// Device keys in provisioning results are kept for Provisioning__KeysRetentionHours, then removed.
app.timer('purgeExpiredDeviceKeys', {
  schedule: PURGE_EXPIRED_KEYS_SCHEDULE,
  handler: makePurgeExpiredDeviceKeys({ results }),
});

/** A registered HTTP handler: problem details on errors, and the durable client input when it needs one. */
interface HttpRegistration {
  handler: HttpHandler;
  extraInputs?: FunctionInput[];
}
const plain = (handler: (request: ApiRequest) => Promise<ApiResponse>): HttpRegistration => ({
  handler: withProblemDetails(handler),
});
const withWorkflows = (
  handler: (request: ApiRequest, workflows: WorkflowClient) => Promise<ApiResponse>,
): HttpRegistration => ({
  extraInputs: [df.input.durableClient()],
  handler: withProblemDetails(withWorkflowClient(handler)),
});

/**
 * The handler of every operation of the route table (src/http/routes/), which gives each its route, method
 * and auth level (function keys guard every route in Azure but health and openapi.json: anonymous, cheap and
 * cached, for load balancers, availability tests and the local start-up banner).
 */
const httpHandlers: Record<string, HttpRegistration> = {
  // Provisioning API (seed 002 §3.4) and last-known values.
  registerDevice: plain(provisioning.registerDevice),
  listDevices: plain(provisioning.listDevices),
  getDevice: plain(provisioning.getDevice),
  updateDevice: plain(provisioning.updateDevice),
  unregisterDevice: plain(provisioning.unregisterDevice),
  activateDevice: plain(provisioning.activateDevice),
  deactivateDevice: plain(provisioning.deactivateDevice),
  resetDeviceCredentials: plain(provisioning.resetCredentials),
  getDeviceTwin: plain(provisioning.getDeviceTwin),
  updateDeviceTwin: plain(provisioning.updateDeviceTwin),
  getDeviceState: plain(makeGetDeviceState({ stateStore })),
  listAlarms: plain(alarmHandlers.listAlarms),
  acknowledgeAlarm: plain(alarmHandlers.acknowledgeAlarm),
  closeAlarm: plain(alarmHandlers.closeAlarm),
  getHealth: plain(makeGetHealth({ probes: health })),
  openApiDocument: plain(getOpenApiDocument),
  startProvisioning: withWorkflows(workflowHandlers.startProvisioning),
  startBulkProvisioning: withWorkflows(workflowHandlers.startBulkProvisioning),
  getProvisioning: withWorkflows(workflowHandlers.getProvisioning),
  cancelProvisioning: withWorkflows(workflowHandlers.cancelProvisioning),
  getProvisioningResults: withWorkflows(workflowHandlers.getProvisioningResults),
  createJob: withWorkflows(jobHandlers.createJob),
  listJobs: plain(jobHandlers.listJobs),
  getJob: withWorkflows(jobHandlers.getJob),
  cancelJobPost: withWorkflows(jobHandlers.cancelJob),
  // The earlier cancel route (DELETE jobs/{id}), kept as an alias of POST jobs/{id}/cancel.
  cancelJob: withWorkflows(jobHandlers.cancelJob),
  listJobDevices: plain(jobHandlers.listJobDevices),
};
const unrouted = Object.keys(httpHandlers).filter((name) => !API_ROUTES.some((r) => r.operationId === name));
if (unrouted.length > 0) throw new Error(`HTTP handlers without a route-table entry: ${unrouted.join(', ')}`);
for (const route of API_ROUTES) {
  const registration = httpHandlers[route.operationId];
  if (!registration) throw new Error(`The route table's ${route.operationId} has no handler.`);
  app.http(route.operationId, {
    route: route.path.slice(1),
    methods: [route.method.toUpperCase() as Uppercase<typeof route.method>],
    authLevel: route.anonymous ? 'anonymous' : 'function',
    ...registration,
  });
}
