import { describe, expect, it } from 'vitest';
import {
  connectionIsSet,
  describeTarget,
  isLocalEmulatorConnection,
  isPlaceholderConnection,
  LOCAL_DEV_GROUPS,
  realIotHubSettings,
  resolveEventHubTarget,
} from '../../../tools/local-runtime/event-hub-connection.js';
import { bodyBytes, deliveredBodies } from '../../../tools/local-runtime/event-hubs.js';

// The pure parts of the embedded runtime's Event Hub trigger driver; what it does against an endpoint is in
// test/integration/local-runtime/event-hub-trigger.test.ts.

const batchOf = (...bodies: Buffer[]) => bodies.map((body, i) => ({ body, sequenceNumber: i }));

describe('bodies as the host delivers them for the registered dataType', () => {
  it("dataType 'binary': Buffers, exactly the bytes sent", () => {
    const bytes = Buffer.from([0xff, 0x7b]);
    const delivered = deliveredBodies(batchOf(Buffer.from('{"a":1}'), bytes), 'binary');
    expect(delivered.every((b) => Buffer.isBuffer(b))).toBe(true);
    expect(delivered[1]).toEqual(bytes);
  });

  it("dataType 'string': text", () => {
    expect(deliveredBodies(batchOf(Buffer.from('{"a":1}')), 'string')).toEqual(['{"a":1}']);
  });

  it('no dataType: parsed JSON, numbers re-serialized as the host does', () => {
    const delivered = deliveredBodies(
      batchOf(Buffer.from('{"a":123456789012345678901234567890,"b":[1]}')),
      undefined,
    );
    expect(delivered).toEqual([{ a: 1.2345678901234568e29, b: [1] }]);
  });

  it('no dataType: one non-JSON body fails the whole batch, naming its sequence number', () => {
    expect(() =>
      deliveredBodies(batchOf(Buffer.from('{"ok":1}'), Buffer.from('not json')), undefined),
    ).toThrow(/event 1 of the batch \(sequence number 1\) is not JSON/);
  });

  it('an event body is its bytes: a Buffer as it is, a Uint8Array view without copying past its range, text as UTF-8', () => {
    const backing = new Uint8Array([1, 2, 3, 4, 5]);
    expect(bodyBytes({ body: Buffer.from('é') })).toEqual(Buffer.from('é'));
    expect([...bodyBytes({ body: backing.subarray(1, 3) })]).toEqual([2, 3]);
    expect(bodyBytes({ body: 'é' }).toString('utf8')).toBe('é');
    expect(bodyBytes({ body: { a: 1 } }).toString('utf8')).toBe('{"a":1}');
  });
});

describe('the connection of an Event Hub trigger, resolved as the host resolves it', () => {
  const local =
    'Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=c2VjcmV0;UseDevelopmentEmulator=true';

  it("the setting's connection string, the hub from the binding", () => {
    expect(resolveEventHubTarget({ C: local }, 'C', 'iothub-events')).toEqual({
      kind: 'connectionString',
      connectionString: local,
      eventHubName: 'iothub-events',
    });
  });

  it("a connection string's EntityPath names the hub (an IoT Hub built-in endpoint's string has one)", () => {
    const iotHub =
      'Endpoint=sb://ihsuprodxx.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=a2V5;EntityPath=iothub-ehub-x';
    expect(resolveEventHubTarget({ C: iotHub }, 'C', 'other')).toMatchObject({
      eventHubName: 'iothub-ehub-x',
    });
  });

  it('<setting>__fullyQualifiedNamespace: an identity (DefaultAzureCredential)', () => {
    expect(
      resolveEventHubTarget({ C__fullyQualifiedNamespace: 'ns.servicebus.windows.net' }, 'C', 'hub'),
    ).toEqual({
      kind: 'identity',
      fullyQualifiedNamespace: 'ns.servicebus.windows.net',
      eventHubName: 'hub',
    });
  });

  it('a placeholder or missing connection is refused, naming both settings', () => {
    for (const value of [
      undefined,
      '',
      'Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKey=<key>',
      'Endpoint=sb://localhost/;SharedAccessKeyName=local;SharedAccessKey=local',
    ]) {
      const settings: Record<string, string | undefined> = { C: value };
      expect(connectionIsSet(settings, 'C')).toBe(false);
      expect(() => resolveEventHubTarget(settings, 'C', 'hub')).toThrow(
        /'C' is not set: give C .* or C__fullyQualifiedNamespace/,
      );
    }
  });

  it('tells the local endpoint from a real namespace, and describes a target without its key', () => {
    expect(isLocalEmulatorConnection(local)).toBe(true);
    expect(isPlaceholderConnection(local)).toBe(false);
    expect(isLocalEmulatorConnection('Endpoint=sb://x.servicebus.windows.net/;SharedAccessKey=k')).toBe(
      false,
    );
    const described = describeTarget(resolveEventHubTarget({ C: local }, 'C', 'anomalies'));
    expect(described).toBe('sb://localhost:5672/anomalies');
    expect(described).not.toContain('c2VjcmV0');
  });
});

describe('a real IoT Hub for the embedded runtime (npm start without Core Tools)', () => {
  const sample = {
    IotHubEventsConnection:
      'Endpoint=sb://<iothub-namespace>.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=<key>;EntityPath=<event-hub-compatible-name>',
    IotHubEventHubName: '<event-hub-compatible-name>',
    IngestConsumerGroup: 'ingest',
  };

  it('the sample placeholders or the local endpoint: nothing kept (the local endpoint is consumed)', () => {
    expect(realIotHubSettings(sample)).toEqual({});
    expect(
      realIotHubSettings({
        IotHubEventsConnection:
          'Endpoint=sb://localhost:5672;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true',
      }),
    ).toEqual({});
  });

  it('a real connection string: it, the hub name and consumer groups given (placeholders dropped)', () => {
    const real =
      'Endpoint=sb://ihsuprodam123.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=a2V5;EntityPath=iothub-ehub-x';
    expect(
      realIotHubSettings({ ...sample, IotHubEventsConnection: real, IngestConsumerGroup: 'local-dev' }),
    ).toEqual({
      IotHubEventsConnection: real,
      IngestConsumerGroup: 'local-dev',
      LocalRules__ConsumerGroup: 'local-dev-asa',
    });
  });

  it("never the deployed app's consumer groups (ingest, asa), also when copied from the sample; own ones are kept", () => {
    const real =
      'Endpoint=sb://ihsuprodam123.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=a2V5;EntityPath=iothub-ehub-x';
    expect(
      realIotHubSettings({ ...sample, IotHubEventsConnection: real, LocalRules__ConsumerGroup: 'asa' }),
    ).toMatchObject({ IngestConsumerGroup: 'local-dev', LocalRules__ConsumerGroup: 'local-dev-asa' });
    expect(
      realIotHubSettings({
        IotHubEventsConnection: real,
        IngestConsumerGroup: 'mine',
        LocalRules__ConsumerGroup: 'mine-rules',
      }),
    ).toMatchObject({ IngestConsumerGroup: 'mine', LocalRules__ConsumerGroup: 'mine-rules' });
  });

  it('a namespace for an identity counts as real', () => {
    expect(
      realIotHubSettings({
        IotHubEventsConnection__fullyQualifiedNamespace: 'ihsu.servicebus.windows.net',
        IotHubEventHubName: 'iothub-ehub-x',
      }),
    ).toEqual({
      IotHubEventsConnection__fullyQualifiedNamespace: 'ihsu.servicebus.windows.net',
      IotHubEventHubName: 'iothub-ehub-x',
      ...LOCAL_DEV_GROUPS,
    });
  });
});
