import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EVENT_HUB_TRIGGERS, funcLocalSettings, funcRunSettings } from '../../../tools/func-start.js';

// The `func start` branch's settings: local.settings.json points the Event Hub triggers at the local endpoint
// (default port, no port of a particular run), and this run's settings never hide a real Event Hub.

const sample = (
  JSON.parse(readFileSync('local.settings.sample.json', 'utf8')) as { Values: Record<string, string> }
).Values;
const LOCAL =
  'Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=x;UseDevelopmentEmulator=true';

describe('funcLocalSettings (local.settings.json from the sample)', () => {
  it('gives every Event Hub trigger with a placeholder connection the local endpoint, and its local hub and group', () => {
    const values = funcLocalSettings(sample, LOCAL);
    expect(values).toMatchObject({
      IotHubEventsConnection: LOCAL,
      IotHubEventHubName: 'iothub-events',
      IngestConsumerGroup: 'ingest',
      AnomaliesEventHubConnection: LOCAL,
      AnomaliesEventHubName: 'anomalies',
      AnomaliesConsumerGroup: 'notify',
      ReplayEventHubName: 'replay',
      ReplayConsumerGroup: 'replay',
    });
    // The sample's replay connection already is the local endpoint (default port, its public key): kept as is.
    expect(sample.ReplayEventHubConnection).toMatch(
      /^Endpoint=sb:\/\/localhost:5672;.*UseDevelopmentEmulator=true$/,
    );
    expect(values.ReplayEventHubConnection).toBe(sample.ReplayEventHubConnection);
    // Nothing is disabled for lack of a connection any more, and no placeholder is left in a connection.
    for (const trigger of EVENT_HUB_TRIGGERS)
      expect(values).not.toHaveProperty(`AzureWebJobs.${trigger.name}.Disabled`);
    expect(Object.entries(values).filter(([k, v]) => k.endsWith('Connection') && /[<>]/.test(v))).toEqual([]);
  });

  it('by default writes the endpoint at its default port 5672 with the emulator flag', () => {
    expect(funcLocalSettings(sample).IotHubEventsConnection).toMatch(
      /^Endpoint=sb:\/\/localhost:5672;.*UseDevelopmentEmulator=true$/,
    );
  });

  it('keeps a real connection the sample (or a copy of it) already holds', () => {
    const real = 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=k';
    const values = funcLocalSettings(
      { ...sample, AnomaliesEventHubConnection: real, AnomaliesEventHubName: 'alerts' },
      LOCAL,
    );
    expect(values).toMatchObject({ AnomaliesEventHubConnection: real, AnomaliesEventHubName: 'alerts' });
  });

  it('without an endpoint: leaves a placeholder connection out and disables its trigger (the old behaviour)', () => {
    const values = funcLocalSettings(sample, null);
    expect(values).not.toHaveProperty('IotHubEventsConnection');
    expect(values['AzureWebJobs.ingestTelemetry.Disabled']).toBe('true');
  });
});

describe("funcRunSettings (this run's settings as func's environment)", () => {
  const run = {
    IotHubEventsConnection: LOCAL.replace('5672', '41234'),
    IotHubEventHubName: 'iothub-events',
    IngestConsumerGroup: 'ingest',
    AnomaliesEventHubConnection: LOCAL.replace('5672', '41234'),
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  };

  it("passes this run's endpoint (its port) when local.settings.json points at the local endpoint", () => {
    expect(funcRunSettings(run, { IotHubEventsConnection: LOCAL })).toEqual(run);
  });

  it('drops the IoT Hub settings when local.settings.json names a real IoT Hub (an environment variable would win)', () => {
    const real =
      'Endpoint=sb://ihsu.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=k;EntityPath=hub';
    const kept = funcRunSettings(run, { IotHubEventsConnection: real });
    expect(kept).not.toHaveProperty('IotHubEventsConnection');
    expect(kept).not.toHaveProperty('IotHubEventHubName');
    expect(kept).not.toHaveProperty('IngestConsumerGroup');
    expect(kept.AnomaliesEventHubConnection).toBe(run.AnomaliesEventHubConnection);
  });

  it('drops them too for a managed-identity namespace, and never passes a placeholder connection', () => {
    const kept = funcRunSettings(
      { ...run, AnomaliesEventHubConnection: 'Endpoint=sb://<ns>/' },
      { IotHubEventsConnection__fullyQualifiedNamespace: 'ns.servicebus.windows.net' },
    );
    expect(kept).not.toHaveProperty('IotHubEventsConnection');
    expect(kept).not.toHaveProperty('AnomaliesEventHubConnection');
    expect(kept.AzureWebJobsStorage).toBe('UseDevelopmentStorage=true');
  });
});
