import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition } from '@azure/event-hubs';
import type { AmqpAnnotatedMessage } from '@azure/core-amqp';
import { LOCAL_EVENTHUBS_KEY_NAME } from '../../../tools/local-eventhubs/config.js';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import { receiveFromPartition } from './sdk-helpers.js';

let hubs: LocalEventHubs;

beforeAll(async () => {
  hubs = await startLocalEventHubs({ port: 0 });
});
afterAll(async () => {
  await hubs.stop();
});

/** The connection string of this endpoint with another key (right key name, wrong secret) or key name. */
function withKey(keyName: string, key: string): string {
  return `Endpoint=sb://localhost:${hubs.port};SharedAccessKeyName=${keyName};SharedAccessKey=${key};UseDevelopmentEmulator=true`;
}

describe('local Event Hubs endpoint: what the app reads round-trips exactly', () => {
  it('delivers IoT Hub message annotations, application and AMQP properties unchanged, plus the service stamps', async () => {
    const enqueued = new Date('2026-11-23T08:00:00.123Z');
    const message: AmqpAnnotatedMessage = {
      body: Buffer.from(JSON.stringify({ temperature: 22.25 }), 'utf8'),
      bodyType: 'data',
      messageAnnotations: {
        'iothub-connection-device-id': 'sensor-ü-01',
        'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
        'iothub-connection-auth-generation-id': '638000000000000000',
        'iothub-enqueuedtime': enqueued,
        'iothub-message-source': 'Telemetry',
      },
      applicationProperties: { alert: 'true', count: 7, ratio: 0.5 },
      properties: {
        messageId: 'msg-1',
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        correlationId: 'corr-1',
        subject: 'telemetry',
      },
    };
    const producer = new EventHubProducerClient(hubs.connectionString(), 'iothub-events');
    try {
      await producer.sendBatch([message], { partitionId: '0' });
    } finally {
      await producer.close();
    }
    const [event] = await receiveFromPartition(hubs.connectionString(), 'iothub-events', '0', 1);
    expect(event).toBeDefined();
    if (!event) return;
    expect(Buffer.isBuffer(event.body) ? JSON.parse(event.body.toString('utf8')) : event.body).toEqual({
      temperature: 22.25,
    });
    expect(event.properties).toEqual({ alert: 'true', count: 7, ratio: 0.5 });
    expect(event.systemProperties).toMatchObject({
      'iothub-connection-device-id': 'sensor-ü-01',
      'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
      'iothub-connection-auth-generation-id': '638000000000000000',
      // The SDK turns Date annotations into epoch ms in systemProperties (as it does for IoT Hub's own).
      'iothub-enqueuedtime': enqueued.getTime(),
      'iothub-message-source': 'Telemetry',
    });
    expect(event.messageId).toBe('msg-1');
    expect(event.contentType).toBe('application/json');
    expect(event.correlationId).toBe('corr-1');
    const raw = event.getRawAmqpMessage();
    expect(raw.properties).toMatchObject({
      messageId: 'msg-1',
      contentEncoding: 'utf-8',
      contentType: 'application/json',
    });
    expect(raw.properties?.subject).toBe('telemetry');
    expect(raw.messageAnnotations).toMatchObject({
      'x-opt-sequence-number': 0,
      'x-opt-offset': '0',
      'iothub-connection-device-id': 'sensor-ü-01',
    });
    expect(raw.messageAnnotations?.['x-opt-enqueued-time']).toBeInstanceOf(Date);
    expect(raw.messageAnnotations?.['iothub-enqueuedtime']).toEqual(enqueued);
    expect(raw.bodyType).toBe('data');
  });

  it('stamps x-opt-partition-key and routes one key to one partition, the partition Event Hubs would pick', async () => {
    const { mapPartitionKeyToId } = (await import(
      // The SDK's own mapping (what EventHubBufferedProducerClient uses, mirroring the service): our hash must agree.
      '../../../node_modules/@azure/event-hubs/dist/esm/impl/partitionKeyToIdMapper.js'
    )) as { mapPartitionKeyToId: (key: string, count: number) => number };
    const producer = new EventHubProducerClient(hubs.connectionString(), 'replay');
    const keys = [
      'device-1',
      'device-2',
      'device-ä',
      '',
      'a-much-longer-device-identifier-of-forty-bytes',
      'x',
    ];
    try {
      for (const key of keys) {
        for (let i = 0; i < 3; i++) await producer.sendBatch([{ body: { key, i } }], { partitionKey: key });
      }
    } finally {
      await producer.close();
    }
    const byPartition = new Map<string, { key: string; partitionKey: string | null | undefined }[]>();
    for (const partitionId of ['0', '1', '2', '3']) {
      const expected = keys.filter((k) => String(mapPartitionKeyToId(k, 4)) === partitionId).length * 3;
      const events = await receiveFromPartition(hubs.connectionString(), 'replay', partitionId, expected, {
        timeoutMs: expected === 0 ? 1500 : 15_000,
      });
      expect(events).toHaveLength(expected);
      byPartition.set(
        partitionId,
        events.map((e) => ({ key: (e.body as { key: string }).key, partitionKey: e.partitionKey })),
      );
    }
    for (const key of keys) {
      const partitionId = String(mapPartitionKeyToId(key, 4));
      const seen = byPartition.get(partitionId)?.filter((e) => e.key === key) ?? [];
      expect(seen).toHaveLength(3);
      for (const e of seen) expect(e.partitionKey).toBe(key);
    }
  });

  it('keeps consumer groups independent: each group reads every event from the start', async () => {
    const producer = new EventHubProducerClient(hubs.connectionString('anomalies'));
    try {
      await producer.sendBatch(
        Array.from({ length: 20 }, (_, i) => ({ body: { i } })),
        { partitionId: '1' },
      );
    } finally {
      await producer.close();
    }
    const notify = await receiveFromPartition(hubs.connectionString(), 'anomalies', '1', 20, {
      consumerGroup: 'notify',
    });
    const deflt = await receiveFromPartition(hubs.connectionString(), 'anomalies', '1', 20);
    const again = await receiveFromPartition(hubs.connectionString(), 'anomalies', '1', 20, {
      consumerGroup: 'notify',
    });
    for (const events of [notify, deflt, again]) {
      expect(events.map((e) => (e.body as { i: number }).i)).toEqual([...Array(20).keys()]);
    }
  });
});

describe('local Event Hubs endpoint: refusals', () => {
  it('refuses a wrong key, a wrong key name, for management, send and receive', async () => {
    for (const connection of [
      withKey(LOCAL_EVENTHUBS_KEY_NAME, 'd3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk='),
      withKey('someone', 'x'),
    ]) {
      const producer = new EventHubProducerClient(connection, 'iothub-events', {
        retryOptions: { maxRetries: 0 },
      });
      try {
        await expect(producer.getEventHubProperties()).rejects.toThrow(/unauthori/i);
        await expect(producer.sendBatch([{ body: 'nope' }], { partitionId: '0' })).rejects.toThrow(
          /unauthori/i,
        );
      } finally {
        await producer.close();
      }
      const consumer = new EventHubConsumerClient('$Default', connection, 'iothub-events', {
        retryOptions: { maxRetries: 0 },
      });
      try {
        await expect(consumer.getPartitionIds()).rejects.toThrow(/unauthori/i);
      } finally {
        await consumer.close();
      }
    }
    const check = new EventHubProducerClient(hubs.connectionString(), 'iothub-events');
    try {
      expect((await check.getPartitionProperties('0')).lastEnqueuedSequenceNumber).toBe(0);
    } finally {
      await check.close();
    }
  });

  it('refuses an unknown hub, partition and consumer group as not found', async () => {
    const producer = new EventHubProducerClient(hubs.connectionString(), 'no-such-hub', {
      retryOptions: { maxRetries: 0 },
    });
    try {
      await expect(producer.getEventHubProperties()).rejects.toThrow(/could not be found/);
      await expect(producer.sendBatch([{ body: 1 }])).rejects.toThrow(/could not be found/);
    } finally {
      await producer.close();
    }
    const known = new EventHubProducerClient(hubs.connectionString(), 'iothub-events', {
      retryOptions: { maxRetries: 0 },
    });
    try {
      await expect(known.sendBatch([{ body: 1 }], { partitionId: '9' })).rejects.toThrow(
        /could not be found/,
      );
      await expect(known.getPartitionProperties('9')).rejects.toThrow(/could not be found/);
    } finally {
      await known.close();
    }
    await expect(
      receiveFromPartition(hubs.connectionString(), 'iothub-events', '0', 1, {
        consumerGroup: 'nobody',
        timeoutMs: 5000,
      }),
    ).rejects.toThrow(/could not be found/);
  });

  it('refuses an event larger than 1 MiB and keeps serving the link', async () => {
    const producer = new EventHubProducerClient(hubs.connectionString(), 'iothub-events', {
      retryOptions: { maxRetries: 0 },
    });
    try {
      await expect(
        producer.sendBatch([{ body: Buffer.alloc(1024 * 1024 + 10) }], { partitionId: '3' }),
      ).rejects.toThrow();
      await producer.sendBatch([{ body: 'small' }], { partitionId: '3' });
    } finally {
      await producer.close();
    }
    const events = await receiveFromPartition(hubs.connectionString(), 'iothub-events', '3', 1, {
      startPosition: earliestEventPosition,
    });
    expect(events.map((e): unknown => e.body)).toEqual(['small']);
  });
});
