import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEntryPoint, type Registration } from '../support/entry-point.js';
import { iotHubBatch } from '../support/iothub-batch.js';
import { testSettings } from '../support/local-env.js';
import { operations } from '../support/openapi.js';

describe('composition root (src/index.ts) loaded as the Functions host loads it', () => {
  let registrations: Registration[];
  const byName = (name: string) => {
    const found = registrations.find((r) => r.metadata.name === name);
    if (!found) throw new Error(`${name} was not registered`);
    return found;
  };
  beforeAll(async () => {
    registrations = await loadEntryPoint(
      testSettings({ Alerts__MaxRetryCount: '7', Alerts__RedeliverySchedule: '30 */2 * * * *' }),
    );
  });

  it('registers exactly the functions of this release', () => {
    expect(registrations.map((r) => r.metadata.name).sort()).toEqual(
      [
        'acknowledgeAlarm',
        'activateDevice',
        'cancelJob',
        'cancelJobPost',
        'cancelProvisioning',
        'closeAlarm',
        'createJob',
        'deactivateDevice',
        'getDevice',
        'getDeviceState',
        'getDeviceTwin',
        'getHealth',
        'getJob',
        'getProvisioning',
        'getProvisioningResults',
        'ingestTelemetry',
        'listAlarms',
        'listDevices',
        'listJobDevices',
        'listJobs',
        'notifyAnomalies',
        'openApiDocument',
        'purgeExpiredDeviceKeys',
        'redeliverAlerts',
        'registerDevice',
        'replayTelemetry',
        'resetDeviceCredentials',
        'startBulkProvisioning',
        'startProvisioning',
        'unregisterDevice',
        'updateDevice',
        'updateDeviceTwin',
        // Durable orchestrations and their activities.
        'bulkProvision',
        'bulkProvisionAssembleResults',
        'bulkProvisionChunk',
        'bulkProvisionCreateChunk',
        'bulkProvisionSalvageChunk',
        'jobCancelHubJob',
        'jobGetHubJob',
        'jobNotify',
        'jobRecord',
        'jobResolveTarget',
        'jobSaveDeviceResults',
        'jobStartHubJob',
        'provisionDevice',
        'provisionDeviceActivate',
        'provisionDeviceCallHook',
        'provisionDeviceCreateIdentity',
        'provisionDeviceDeleteIdentity',
        'provisionDeviceDeleteRegistry',
        'provisionDeviceDiscardKeys',
        'provisionDevicePublishOutcome',
        'provisionDeviceSetInitialTwin',
        'provisionDeviceWriteRegistry',
        'scheduledJob',
      ].sort(),
    );
  });

  it('gives every HTTP function that starts or reads workflows the durable client input binding', () => {
    for (const name of [
      'startProvisioning',
      'startBulkProvisioning',
      'getProvisioning',
      'createJob',
      'getJob',
      'cancelJob',
      'cancelJobPost',
    ]) {
      const bindings = Object.values(byName(name).metadata.bindings);
      expect(
        bindings.some((b) => b.type === 'durableClient' && b.direction === 'in'),
        name,
      ).toBe(true);
    }
    const orchestration = Object.values(byName('provisionDevice').metadata.bindings);
    expect(orchestration).toEqual([
      expect.objectContaining({ type: 'orchestrationTrigger', direction: 'in' }),
    ]);
    const activity = Object.values(byName('provisionDeviceCallHook').metadata.bindings);
    expect(activity).toEqual([expect.objectContaining({ type: 'activityTrigger', direction: 'in' })]);
  });

  it('binds ingestTelemetry to the IoT Hub built-in endpoint through settings, in batches, with a retry policy', () => {
    const { metadata } = byName('ingestTelemetry');
    const trigger = Object.values(metadata.bindings).find((b) => b.direction === 'in');
    expect(trigger).toMatchObject({
      type: 'eventHubTrigger',
      connection: 'IotHubEventsConnection',
      eventHubName: '%IotHubEventHubName%',
      consumerGroup: '%IngestConsumerGroup%',
      cardinality: 'many',
    });
    expect(metadata.retryOptions).toMatchObject({ strategy: 'exponentialBackoff', maxRetryCount: 5 });
  });

  it("takes notifyAnomalies' retry count from settings, and runs redeliverAlerts on its schedule", () => {
    expect(byName('notifyAnomalies').metadata.retryOptions).toMatchObject({
      strategy: 'exponentialBackoff',
      maxRetryCount: 7,
    });
    const timer = Object.values(byName('redeliverAlerts').metadata.bindings).find(
      (b) => b.direction === 'in',
    );
    expect(timer).toMatchObject({ type: 'timerTrigger', schedule: '30 */2 * * * *' });
  });

  it('describes every HTTP function in openapi.json, with its route, method and name', () => {
    const documented = operations();
    const http = registrations.filter((r) =>
      Object.values(r.metadata.bindings).some((b) => b.type === 'httpTrigger'),
    );
    expect(http.length).toBeGreaterThan(5);
    for (const { metadata } of http) {
      const trigger = Object.values(metadata.bindings).find((b) => b.type === 'httpTrigger') ?? {};
      const op = documented.get(metadata.name);
      expect(op, metadata.name).toBeDefined();
      expect(op?.path).toBe(`/${String(trigger.route)}`);
      expect((trigger.methods as string[]).map((m) => m.toLowerCase())).toEqual([op?.method]);
      // Anonymous exactly where the document waives the function key.
      expect(trigger.authLevel, metadata.name).toBe(op?.anonymous ? 'anonymous' : 'function');
    }
    // And the other way round: the document describes nothing that is not registered.
    expect([...documented.keys()].sort()).toEqual(http.map((r) => r.metadata.name).sort());
  });

  it('routes GET devices/{id}/state', () => {
    const trigger = Object.values(byName('getDeviceState').metadata.bindings).find(
      (b) => b.type === 'httpTrigger',
    );
    expect(trigger).toMatchObject({ route: 'devices/{id}/state', methods: ['GET'], authLevel: 'function' });
  });

  it('serves the state that the registered ingest handler wrote, end to end on the local services', async () => {
    const { bodies, triggerMetadata } = iotHubBatch([
      {
        deviceId: 'wired-1',
        sequenceNumber: 7,
        body: Buffer.from('{"temperature":19.5,"ts":"2026-11-23T09:59:00Z"}'),
      },
    ]);
    await byName('ingestTelemetry').callback(bodies, new InvocationContext({ triggerMetadata }));
    const response = (await byName('getDeviceState').callback(
      new HttpRequest({
        url: 'http://localhost/api/devices/wired-1/state',
        method: 'GET',
        params: { id: 'wired-1' },
      }),
      new InvocationContext(),
    )) as HttpResponseInit;
    expect(response.status).toBe(200);
    expect(response.jsonBody).toMatchObject({
      deviceId: 'wired-1',
      telemetry: {
        temperature: { value: 19.5, timestamp: '2026-11-23T09:59:00.000Z', timeSource: 'device' },
      },
    });
  });
});
