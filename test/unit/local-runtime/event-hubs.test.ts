import type { InvocationContext } from '@azure/functions';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LocalHub,
  MAX_RETAINED_PER_PARTITION,
  PARTITIONS,
  startEventHubTrigger,
  type EventHubTriggerOptions,
  type Registration,
} from '../../../tools/local-runtime/event-hubs.js';

// The embedded runtime's Event Hub trigger semantics (issue 11, ingest items 2 and 3). Everything is ordered by
// events, never by time: retries wait on a sleep the test releases.

/** A partition key for each partition of a local hub. */
function keysByPartition(): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.filter(Boolean).length < PARTITIONS; i++)
    keys[LocalHub.partitionOf(`k${i}`)] ??= `k${i}`;
  return keys;
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** An eventHubTrigger registration as the library makes it, with the given handler. */
function registration(
  handler: (messages: unknown, context: InvocationContext) => Promise<void>,
  binding: Record<string, unknown> = {},
  maxRetryCount = 3,
  retryOptions: Registration['metadata']['retryOptions'] | null = {
    strategy: 'exponentialBackoff',
    maxRetryCount,
    minimumInterval: { seconds: 2 },
    maximumInterval: { seconds: 120 },
  },
): Registration {
  return {
    metadata: {
      name: 'testTrigger',
      bindings: {
        trigger: {
          type: 'eventHubTrigger',
          direction: 'in',
          eventHubName: '%HubName%',
          consumerGroup: 'cg',
          cardinality: 'many',
          ...binding,
        },
      },
      ...(retryOptions ? { retryOptions } : {}),
    },
    callback: handler as Registration['callback'],
  };
}

const partitionOf = (context: InvocationContext) =>
  (context.triggerMetadata?.partitionContext as { partitionId: string }).partitionId;

const running: { stop: () => Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

function start(
  reg: Registration,
  sleep?: (ms: number) => Promise<void>,
  extra: Partial<EventHubTriggerOptions> = {},
) {
  const hub = new LocalHub('events');
  const logs: string[] = [];
  running.push(
    startEventHubTrigger(reg, {
      settings: { HubName: 'events' },
      hub: () => hub,
      maxBatch: 10,
      log: (m) => logs.push(m),
      sleep: sleep ?? (() => Promise.resolve()),
      random: () => 0.5, // the host's ±20 % randomization at its midpoint: factor 1
      ...extra,
    }),
  );
  return { hub, logs };
}

/** Lets queued work run until `condition` holds (bounded by the test's timeout, never by a clock). */
async function until(condition: () => boolean, step: () => void = () => undefined) {
  while (!condition()) {
    step();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('local Event Hub trigger: partitions', () => {
  it(
    'a partition whose handler keeps failing does not hold back another partition',
    { timeout: 10_000 },
    async () => {
      const [bad = '', good = ''] = keysByPartition();
      const badPartition = String(LocalHub.partitionOf(bad));
      const events: string[] = [];
      const backoffs: { ms: number; release: () => void }[] = [];
      const { hub } = start(
        registration(async (_messages, context) => {
          const which = partitionOf(context) === badPartition ? 'bad' : 'good';
          events.push(`${which} attempt ${context.retryContext?.retryCount ?? -1}`);
          if (which === 'bad') throw new Error('poisoned');
          return Promise.resolve();
        }),
        (ms) => {
          const d = deferred();
          backoffs.push({ ms, release: d.resolve });
          return d.promise;
        },
      );
      hub.publish(Buffer.from('{}'), bad, {}, {});
      await until(() => backoffs.length === 1); // the bad partition now waits to retry
      hub.publish(Buffer.from('{}'), good, {}, {});
      // Before: never, while the one shared loop waited on the bad partition's retry.
      await until(() => events.includes('good attempt 0'));
      expect(events).toEqual(['bad attempt 0', 'good attempt 0']);

      // The bad batch still gets its whole retry policy, then its checkpoint moves on to the next event.
      await until(
        () => events.length === 5,
        () => {
          for (const b of backoffs) b.release();
        },
      );
      hub.publish(Buffer.from('{}'), bad, {}, {});
      await until(() => events.length === 6);
      expect(events.slice(2)).toEqual(['bad attempt 1', 'bad attempt 2', 'bad attempt 3', 'bad attempt 0']);
      expect(backoffs.slice(0, 3).map((b) => b.ms)).toEqual([2000, 4000, 6000]); // the host's series, below
    },
  );
});

describe('local Event Hub trigger: partitions run concurrently, as each has its own owner in the host', () => {
  it('invocations of different partitions are in flight at the same time', { timeout: 10_000 }, async () => {
    const keys = keysByPartition();
    const inFlight = new Set<string>();
    let most = 0;
    const release = deferred();
    const { hub } = start(
      registration(async (_messages, context) => {
        inFlight.add(partitionOf(context));
        most = Math.max(most, inFlight.size);
        await release.promise;
        inFlight.delete(partitionOf(context));
      }),
    );
    for (const key of keys) hub.publish(Buffer.from('{}'), key, {}, {});
    await until(() => most === PARTITIONS); // one partition at a time would stop at 1 and never get here
    release.resolve();
    await until(() => inFlight.size === 0);
    expect(most).toBe(PARTITIONS);
  });
});

describe("local Event Hub trigger: the host's retry delays (issue 15, 2.6)", { timeout: 5000 }, () => {
  /** The delays between the attempts of one always-failing batch, with the host's retry policy `retry`. */
  async function delaysOf(
    retry: Registration['metadata']['retryOptions'],
    extra: Partial<EventHubTriggerOptions> = {},
  ): Promise<number[]> {
    const delays: number[] = [];
    let attempts = 0;
    const { hub } = start(
      registration(
        async () => {
          attempts++;
          return Promise.reject(new Error('down'));
        },
        {},
        0,
        retry ?? null, // null: the function registers no policy
      ),
      (ms) => {
        delays.push(ms);
        return Promise.resolve();
      },
      extra,
    );
    hub.publish(Buffer.from('{}'), 'k', {}, {});
    const expected = (retry?.maxRetryCount ?? extra.hostRetry?.maxRetryCount ?? 0) + 1;
    await until(() => attempts === expected);
    return delays;
  }

  it('exponentialBackoff: minimumInterval, then min + 2^(n-1) x min, each capped by maximumInterval', async () => {
    const delays = await delaysOf({
      strategy: 'exponentialBackoff',
      maxRetryCount: 6,
      minimumInterval: { seconds: 2 },
      maximumInterval: { seconds: 15 },
    });
    // RandomizedExponentialBackoffStrategy (WebJobs SDK): 2, 2+2, 2+4, 2+8, then 2+16 > 15 → 15 from then on.
    // Before: 2, 4, 8, 16, 32, 64 s (no cap).
    expect(delays).toEqual([2000, 4000, 6000, 10_000, 15_000, 15_000]);
  });

  it("exponentialBackoff: the increment varies by the host's ±20 %", async () => {
    const retry = {
      strategy: 'exponentialBackoff',
      maxRetryCount: 3,
      minimumInterval: { seconds: 10 },
      maximumInterval: { seconds: 100 },
    };
    expect(await delaysOf(retry, { random: () => 0 })).toEqual([10_000, 18_000, 26_000]);
    expect(await delaysOf(retry, { random: () => 0.999_999 })).toEqual([10_000, 22_000, 34_000]);
  });

  it('exponentialBackoff: a minimumInterval above 2 s is honoured (it was cut to 2 s)', async () => {
    const delays = await delaysOf({
      strategy: 'exponentialBackoff',
      maxRetryCount: 1,
      minimumInterval: { seconds: 30 },
      maximumInterval: { seconds: 60 },
    });
    expect(delays).toEqual([30_000]);
  });

  it('fixedDelay: delayInterval between every attempt', async () => {
    const delays = await delaysOf({
      strategy: 'fixedDelay',
      maxRetryCount: 3,
      delayInterval: { seconds: 5 },
    });
    expect(delays).toEqual([5000, 5000, 5000]); // before: 1, 2, 4 s
  });

  it("host.json's retry applies to a function without its own policy (TimeSpan strings)", async () => {
    const delays = await delaysOf(undefined, {
      hostRetry: {
        strategy: 'exponentialBackoff',
        maxRetryCount: 2,
        minimumInterval: '00:00:03',
        maximumInterval: '00:00:04',
      },
    });
    expect(delays).toEqual([3000, 4000]); // before: no retry at all
  });
});

describe('local Event Hub trigger: logging', () => {
  it('logs any value (null-prototype objects, BigInt, cycles, symbols) without failing the invocation', async () => {
    const done = deferred<number>();
    let calls = 0;
    const { hub, logs } = start(
      registration(async (_messages, context) => {
        calls++;
        const properties = Object.assign(Object.create(null) as Record<string, unknown>, {
          'stream-id': 'audit',
        });
        const cycle: Record<string, unknown> = { name: 'loop' };
        cycle.self = cycle;
        context.log('archived streams', properties, 12n, cycle, Symbol('s'));
        context.warn(Object.create(null));
        done.resolve(calls);
        return Promise.resolve();
      }),
    );
    hub.publish(Buffer.from('{}'), 'k', {}, {});
    expect(await done.promise).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(1); // not retried
    expect(logs[0]).toContain('archived streams');
    expect(logs[0]).toContain("'stream-id': 'audit'");
    expect(logs[0]).toContain('12n');
    expect(logs[0]).toContain('[Circular');
    expect(logs[0]).toContain('Symbol(s)');
    expect(logs.some((l) => l.includes('failed'))).toBe(false);
  });
});

describe('local Event Hub trigger: bodies as the host delivers them for the registered dataType', () => {
  async function deliveries(binding: Record<string, unknown>, bodies: Buffer[], batches: number) {
    const seen: unknown[][] = [];
    const all = deferred();
    const { hub, logs } = start(
      registration(async (messages) => {
        seen.push(messages as unknown[]);
        if (seen.length === batches) all.resolve();
        return Promise.resolve();
      }, binding),
    );
    for (const body of bodies) hub.publish(body, 'one-key', {}, {});
    await all.promise;
    return { seen, logs };
  }

  it("dataType 'binary': Buffers, exactly the bytes sent", async () => {
    const bytes = Buffer.from([0xff, 0x7b]);
    const { seen } = await deliveries({ dataType: 'binary' }, [Buffer.from('{"a":1}'), bytes], 1);
    expect(seen[0]?.every((b) => Buffer.isBuffer(b))).toBe(true);
    expect(seen[0]?.[1]).toEqual(bytes);
  });

  it("dataType 'string': text", async () => {
    const { seen } = await deliveries({ dataType: 'string' }, [Buffer.from('{"a":1}')], 1);
    expect(seen[0]).toEqual(['{"a":1}']);
  });

  it('no dataType: parsed JSON, numbers re-serialized as the host does', async () => {
    const { seen } = await deliveries({}, [Buffer.from('{"a":123456789012345678901234567890,"b":[1]}')], 1);
    expect(seen[0]).toEqual([{ a: 1.2345678901234568e29, b: [1] }]);
  });

  it(
    'no dataType: one non-JSON body fails the whole invocation, retried, then the checkpoint moves on',
    { timeout: 10_000 },
    async () => {
      const seen: unknown[][] = [];
      const { hub, logs } = start(
        registration(async (messages) => {
          seen.push(messages as unknown[]);
          return Promise.resolve();
        }),
      );
      hub.publish(Buffer.from('{"ok":1}'), 'one-key', {}, {});
      hub.publish(Buffer.from('not json'), 'one-key', {}, {}); // same partition, same batch
      // 1 attempt + 3 retries, each failing before the handler runs, as the host's binding does.
      await until(() => logs.filter((l) => / attempt \d failed/.test(l)).length === 4);
      hub.publish(Buffer.from('{"after":1}'), 'one-key', {}, {});
      await until(() => seen.length === 1);
      expect(seen).toEqual([[{ after: 1 }]]);
    },
  );
});

describe('local Event Hub: bounded memory (issue 13, item 5)', () => {
  it('keeps an event until every consumer group has checkpointed it, then trims it', async () => {
    const hub = new LocalHub('events');
    const keys = keysByPartition();
    const fast: number[] = [];
    const slowGate = deferred();
    let slowSeen = 0;
    const groups = [
      hub.consume('fast', 10, async (batch) => {
        fast.push(batch.length);
        return Promise.resolve();
      }),
      hub.consume('slow', 10, async (batch) => {
        await slowGate.promise;
        slowSeen += batch.length;
      }),
    ];
    running.push(...groups);
    for (let i = 0; i < 100; i++) hub.publish(Buffer.from(`{"i":${i}}`), keys[i % PARTITIONS] ?? 'k', {}, {});
    await until(() => fast.reduce((a, b) => a + b, 0) === 100);
    // 'fast' is done; 'slow' has checkpointed nothing: everything is still kept for it.
    expect(hub.retained()).toBe(100);
    slowGate.resolve();
    await until(() => slowSeen === 100 && hub.retained() === 0);
    expect(hub.retained()).toBe(0);
    // Later events are numbered on, and a trimmed partition still delivers them.
    hub.publish(Buffer.from('{"late":1}'), keys[0] ?? 'k', {}, {});
    await until(() => slowSeen === 101 && hub.retained() === 0);
  });

  it('keeps at most MAX_RETAINED_PER_PARTITION events when nobody reads (retention)', async () => {
    const hub = new LocalHub('events');
    for (let i = 0; i < MAX_RETAINED_PER_PARTITION + 10; i++)
      hub.publish(Buffer.from('{}'), 'one-key', {}, {});
    expect(hub.retained()).toBe(MAX_RETAINED_PER_PARTITION);
    const first: number[] = [];
    running.push(
      hub.consume('late', 10, async (batch) => {
        if (first.length === 0) first.push(batch[0]?.sequenceNumber ?? -1);
        return Promise.resolve();
      }),
    );
    await until(() => first.length === 1);
    expect(first).toEqual([11]); // the ten oldest were past retention
  });
});
