/**
 * The embedded runtime's Event Hub trigger driver against the local AMQP endpoint, with @azure/event-hubs on both
 * sides and checkpoints in Azurite: batch size, the trigger metadata, retries then the checkpoint moving on,
 * checkpoints surviving a restart, a stop cutting a back-off short, and two runtimes sharing a consumer group.
 * Each test has its own endpoint (fresh hubs, checkpoints under its own `localhost:<port>`). Ordered by events,
 * never by time: retries wait on a sleep the test controls.
 */
import { EventHubProducerClient } from '@azure/event-hubs';
import type { InvocationContext } from '@azure/functions';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { readIotHubBatchMetadata } from '../../../src/telemetry/iothub-batch.js';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';
import {
  consumeEventHub,
  startEventHubTrigger,
  type EventHubTriggerOptions,
  type Registration,
  type RunningConsumer,
} from '../../../tools/local-runtime/event-hubs.js';

const HUB = 'iothub-events';
const storage = () => inject('localServices').storageConnectionString;

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** An endpoint of its own, a producer on it, and a way to start triggers on it. */
async function fixture() {
  const endpoint: LocalEventHubs = await startLocalEventHubs({ port: 0 });
  cleanup.push(() => endpoint.stop());
  const producer = new EventHubProducerClient(endpoint.connectionString(), HUB);
  cleanup.push(() => producer.close());
  const settings = {
    Conn: endpoint.connectionString(),
    HubName: HUB,
    AzureWebJobsStorage: storage(),
  };
  const start = async (reg: Registration, extra: Partial<EventHubTriggerOptions> = {}) => {
    const trigger: RunningConsumer = await startEventHubTrigger(reg, {
      settings,
      maxBatch: 10,
      log: (line) => {
        if (process.env.TRIGGER_LOG) console.log(line);
      },
      sleep: () => Promise.resolve(),
      random: () => 0.5,
      ...extra,
    });
    cleanup.push(() => trigger.stop());
    return trigger;
  };
  /** Sends JSON bodies to one partition, in one batch. */
  const send = (partitionId: string, ...bodies: unknown[]) =>
    producer.sendBatch(
      bodies.map((body) => ({ body: Buffer.from(JSON.stringify(body)) })),
      { partitionId },
    );
  return { endpoint, producer, start, send };
}

/** An eventHubTrigger registration as the library makes it (binary bodies), with the given handler. */
function registration(
  handler: (messages: Buffer[], context: InvocationContext) => Promise<void>,
  maxRetryCount = 2,
  group = 'ingest',
): Registration {
  return {
    metadata: {
      name: 'testTrigger',
      bindings: {
        trigger: {
          type: 'eventHubTrigger',
          direction: 'in',
          connection: 'Conn',
          eventHubName: '%HubName%',
          consumerGroup: group,
          cardinality: 'many',
          dataType: 'binary',
        },
      },
      retryOptions: {
        strategy: 'exponentialBackoff',
        maxRetryCount,
        minimumInterval: { seconds: 2 },
        maximumInterval: { seconds: 120 },
      },
    },
    callback: handler as Registration['callback'],
  };
}

const partitionOf = (context: InvocationContext) =>
  (context.triggerMetadata?.partitionContext as { partitionId: string }).partitionId;
const parsed = (messages: Buffer[]) =>
  messages.map((m) => JSON.parse(m.toString('utf8')) as { n: number; p?: string });

/** Polls `condition` every 20 ms; fails (with `what`) after 20 s. */
async function until(what: string, condition: () => boolean) {
  for (let i = 0; !condition(); i++) {
    if (i > 1000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Event Hub trigger driver on the local AMQP endpoint', { timeout: 60_000 }, () => {
  it('hands over batches of at most maxEventBatchSize, every event once and in order', async () => {
    const { start, send } = await fixture();
    await send('0', ...Array.from({ length: 35 }, (_, n) => ({ n })));
    const batches: number[][] = [];
    await start(
      registration(async (messages) => {
        batches.push(parsed(messages).map((m) => m.n));
        return Promise.resolve();
      }),
    );
    await until('35 events', () => batches.flat().length >= 35);
    expect(batches.every((b) => b.length >= 1 && b.length <= 10)).toBe(true);
    expect(batches.flat()).toEqual(Array.from({ length: 35 }, (_, n) => n));
  });

  it('gives the app the trigger metadata of the IoT Hub built-in endpoint, as a plain producer sent it', async () => {
    const { start, producer } = await fixture();
    const seen: { bodies: Buffer[]; metadata: Record<string, unknown> }[] = [];
    await start(
      registration(async (messages, context) => {
        seen.push({ bodies: messages, metadata: context.triggerMetadata ?? {} });
        return Promise.resolve();
      }),
    );
    const enqueued = '2026-12-02T10:00:00.000Z';
    await producer.sendBatch(
      [
        {
          body: Buffer.from('{"temperature":21.5}'),
          bodyType: 'data',
          messageAnnotations: {
            'iothub-connection-device-id': 'dev-1',
            'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
            'iothub-enqueuedtime': enqueued,
            'iothub-message-source': 'Telemetry',
            'x-opt-partition-key': 'dev-1',
          },
          applicationProperties: { 'stream-id': 'audit', level: 3 },
          properties: { messageId: 'm-1', contentType: 'application/json' },
        },
      ],
      { partitionKey: 'dev-1' },
    );
    await until('the event', () => seen.length === 1);
    const [{ bodies, metadata }] = seen as [(typeof seen)[number]];
    expect(bodies[0]?.toString('utf8')).toBe('{"temperature":21.5}');
    const system = (metadata.systemPropertiesArray as Record<string, unknown>[])[0] ?? {};
    const sequenceNumber = (metadata.sequenceNumberArray as number[])[0];
    expect(system).toMatchObject({
      'iothub-connection-device-id': 'dev-1',
      'iothub-enqueuedtime': enqueued,
      'iothub-message-source': 'Telemetry',
      'x-opt-sequence-number': sequenceNumber,
      'x-opt-offset': (metadata.offsetArray as string[])[0],
      'x-opt-enqueued-time': (metadata.enqueuedTimeUtcArray as string[])[0],
      'x-opt-partition-key': 'dev-1',
      'message-id': 'm-1',
      'content-type': 'application/json',
    });
    expect(metadata.partitionKeyArray).toEqual(['dev-1']);
    expect(metadata.partitionContext).toMatchObject({ eventHubName: HUB, consumerGroup: 'ingest' });
    // What the app reads of it (src/telemetry/iothub-batch.ts), the only reader of raw metadata.
    const read = readIotHubBatchMetadata(metadata, 1);
    expect(read.messages[0]).toMatchObject({
      deviceId: 'dev-1',
      sequenceNumber,
      properties: { 'stream-id': 'audit', level: 3 },
    });
    expect(read.messages[0]?.enqueuedTimeMs).toBe(
      Date.parse(String((metadata.enqueuedTimeUtcArray as string[])[0])),
    );
  });

  it('a failing partition does not hold back another; after its retries the checkpoint moves on, also across a restart', async () => {
    const { start, send } = await fixture();
    const attempts: string[] = [];
    const handler = async (messages: Buffer[], context: InvocationContext) => {
      const events = parsed(messages);
      attempts.push(
        `${partitionOf(context)}:${events.map((e) => e.n).join(',')}#${context.retryContext?.retryCount ?? -1}`,
      );
      if (events.some((e) => e.p === 'bad')) throw new Error('poisoned');
      return Promise.resolve();
    };
    const first = await start(registration(handler, 2));
    await send('0', { n: 1, p: 'bad' });
    await send('1', { n: 2 });
    await until('the good event and every attempt of the bad one', () => attempts.length === 4);
    expect(attempts.filter((a) => a.startsWith('0:'))).toEqual(['0:1#0', '0:1#1', '0:1#2']);
    expect(attempts).toContain('1:2#0');
    await send('0', { n: 3 });
    await until('the next event of the failing partition', () => attempts.includes('0:3#0'));
    await first.stop();

    // Started again on the same consumer group: nothing handled before comes back.
    attempts.length = 0;
    await start(registration(handler, 2));
    await send('0', { n: 4 });
    await send('1', { n: 5 });
    await until('the markers', () => attempts.includes('0:4#0') && attempts.includes('1:5#0'));
    expect(attempts.sort()).toEqual(['0:4#0', '1:5#0']);
  });

  it('a stop lets the batch being handled finish and checkpoint: the next start does not handle it again', async () => {
    const { start, send } = await fixture();
    const gate = deferred();
    const entered = deferred();
    const handled: number[] = [];
    const first = await start(
      registration(async (messages) => {
        entered.resolve();
        await gate.promise;
        handled.push(...parsed(messages).map((m) => m.n));
      }),
    );
    await send('2', { n: 1 });
    await entered.promise;
    const stopping = first.stop();
    gate.resolve();
    await stopping;
    expect(handled).toEqual([1]);

    const second: number[] = [];
    await start(
      registration(async (messages) => {
        second.push(...parsed(messages).map((m) => m.n));
        return Promise.resolve();
      }),
    );
    await send('2', { n: 2 });
    await until('the marker', () => second.includes(2));
    expect(second).toEqual([2]);
  });

  it('stopping cuts a back-off short and leaves that batch unchecked: the next start handles it again', async () => {
    const { start, send } = await fixture();
    const waiting = deferred();
    let attempts = 0;
    const first = await start(
      registration(async () => {
        attempts++;
        return Promise.reject(new Error('down'));
      }, 5),
      {
        // A back-off that would never end by itself.
        sleep: () => {
          waiting.resolve();
          return new Promise<void>(() => undefined);
        },
      },
    );
    await send('3', { n: 7 });
    await waiting.promise;
    await first.stop(); // returns although the back-off never ends
    expect(attempts).toBe(1);

    const again: number[] = [];
    await start(
      registration(async (messages) => {
        again.push(...parsed(messages).map((m) => m.n));
        return Promise.resolve();
      }),
    );
    await until('the redelivered event', () => again.includes(7));
    expect(again).toEqual([7]);
  });

  it('a batch whose handling throws outside the retries is read again, never passed over by the next checkpoint', async () => {
    const { endpoint, send } = await fixture();
    const handled: number[] = [];
    let calls = 0;
    const consumer = await consumeEventHub({
      target: { kind: 'connectionString', connectionString: endpoint.connectionString(), eventHubName: HUB },
      consumerGroup: 'asa',
      storageConnectionString: storage(),
      maxBatch: 10,
      log: () => undefined,
      name: 'throws once',
      handle: (events) => {
        calls++;
        const ns = events.map(
          (e) => (JSON.parse(Buffer.from(e.body as Uint8Array).toString('utf8')) as { n: number }).n,
        );
        if (calls === 1) return Promise.reject(new Error('metadata could not be built'));
        handled.push(...ns);
        return Promise.resolve(true);
      },
    });
    cleanup.push(() => consumer.stop());
    await send('0', { n: 1 }, { n: 2 });
    await until('the first (failing) call', () => calls >= 1);
    await send('0', { n: 3 });
    await until('events 1, 2 and 3 handled', () => [1, 2, 3].every((n) => handled.includes(n)));
    expect(handled.filter((n) => n === 1)).toHaveLength(1);
  });

  it('two runtimes on one consumer group: once the partitions are shared out, every event is handled by exactly one', async () => {
    const { start, send } = await fixture();
    const handledBy = new Map<number, string[]>();
    const runtime = (who: string) =>
      registration(async (messages) => {
        for (const { n } of parsed(messages)) handledBy.set(n, [...(handledBy.get(n) ?? []), who]);
        return Promise.resolve();
      });
    await start(runtime('A'));
    await start(runtime('B'));
    const handledOnce = (ids: number[]) => ids.every((id) => handledBy.get(id)?.length === 1);
    let next = 0;
    const round = async (perPartition: number) => {
      const ids: number[] = [];
      for (const p of ['0', '1', '2', '3']) {
        const batch = Array.from({ length: perPartition }, () => next++);
        ids.push(...batch);
        await send(p, ...batch.map((n) => ({ n })));
      }
      await until(`${ids.length} events`, () => ids.every((id) => handledBy.has(id)));
      return ids;
    };
    // Greedy load balancing: B takes two partitions from A (A's receivers are closed by B's equal epoch). A
    // partition that changes owner is read again from its last checkpoint (at-least-once, as in Event Hubs), so
    // the measurement starts only once the split is 2/2 and the same in two rounds in a row.
    let previous = '';
    for (let warmUp = 0; ; warmUp++) {
      if (warmUp > 80)
        throw new Error(`the partitions were never shared out: ${JSON.stringify([...handledBy])}`);
      const ids = await round(1); // one event per partition, in partition order
      const owners = ids.map((id) => (handledBy.get(id) ?? []).join('+'));
      const split = owners.join(',');
      const balanced =
        owners.filter((o) => o === 'A').length === 2 && owners.filter((o) => o === 'B').length === 2;
      if (handledOnce(ids) && balanced && split === previous) break;
      previous = handledOnce(ids) && balanced ? split : '';
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const measured = await round(100);
    const markers = await round(1); // anything handled twice would have been handled before these
    const twice = measured.filter((id) => (handledBy.get(id)?.length ?? 0) !== 1);
    expect(twice, `handled more than once: ${twice.length}`).toEqual([]);
    expect(handledOnce(markers)).toBe(true);
    const byA = measured.filter((id) => handledBy.get(id)?.[0] === 'A').length;
    expect(byA).toBeGreaterThan(0);
    expect(byA).toBeLessThan(measured.length);
  });
});
