/**
 * Durable instances survive a restart of the local engine: snapshots in Azurite Table storage, pending timers
 * set again, activities that were running re-run (at-least-once), and replay continues where it stopped.
 */
import { TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import type { OrchestrationContext } from 'durable-functions';
import { describe, expect, it } from 'vitest';
import {
  DurableEngine,
  type ActivityHandler,
  type InstanceSnapshot,
} from '../../../tools/local-runtime/durable-engine.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { TableInstanceStore } from '../../../tools/local-runtime/table-instance-store.js';
import { nonDeterministicEpisodes, orchestrator } from '../../support/durable.js';
import { testSettings } from '../../support/local-env.js';

const settings = testSettings();
const tableClient = (name: string, options: TableServiceClientOptions = {}) =>
  TableClient.fromConnectionString(settings.AzureWebJobsStorage ?? '', name, {
    allowInsecureConnection: true,
    ...options,
  });
const store = (name = `durable${Date.now().toString(36)}`) => new TableInstanceStore(tableClient(name));

/** A store whose process "dies" after `writes` entity requests: every later request fails, as after a crash. */
const crashingStore = (name: string, writes: number) => {
  let sent = 0;
  return new TableInstanceStore(
    tableClient(name, {
      additionalPolicies: [
        {
          position: 'perCall',
          policy: {
            name: 'crash-after-writes',
            sendRequest: (request, next) => {
              if (/\/Tables(\(|$|\?)/.test(new URL(request.url).pathname) && request.method === 'POST')
                return next(request);
              if (request.method !== 'GET' && sent++ >= writes)
                return Promise.reject(new Error('process killed'));
              return next(request);
            },
          },
        },
      ],
    }),
  );
};

const snapshotOf = (instanceId: string, input: string) =>
  ({
    instanceId,
    name: 'flow',
    input,
    status: 'Running',
    output: null,
    customStatus: null,
    createdTime: new Date(0).toISOString(),
    lastUpdatedTime: new Date(0).toISOString(),
    generation: 0,
    history: [],
    inbox: [],
    needsFirstEpisode: false,
    seenActions: 0,
    nextId: 0,
    running: [],
    timers: [],
  }) satisfies InstanceSnapshot;

const flow = orchestrator(function* (context: OrchestrationContext) {
  const first = (yield context.df.callActivity('step', 'a')) as string;
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 3_600_000));
  const second = (yield context.df.callActivity('step', 'b')) as string;
  return [first, second, context.df.getInput<{ big: string }>().big.length];
});

const engineWith = (activities: Record<string, ActivityHandler>, instances: TableInstanceStore) =>
  new DurableEngine({
    orchestrators: new Map([['flow', flow]]),
    activities: new Map(Object.entries(activities)),
    clock: 'manual',
    store: instances,
  });

describe('local durable engine with instances in Azurite Table storage', () => {
  it('resumes a waiting instance after a restart, with its history, timer and a large input', async () => {
    const instances = store();
    const before = engineWith({ step: (input) => `done ${String(input)}` }, instances);
    // Bigger than one table row (450,000 characters), so the snapshot spans rows.
    before.start('flow', 'restart-1', { big: 'x'.repeat(600_000) });
    await before.idle();
    expect(before.status('restart-1')?.runtimeStatus).toBe('Running');

    // A new engine (a new process) over the same table.
    const after = engineWith({ step: (input) => `done again ${String(input)}` }, instances);
    expect(await after.restore()).toBe(1);
    expect(after.status('restart-1')?.runtimeStatus).toBe('Running');
    after.advance(3_600_000);
    const done = await after.whenDone('restart-1');
    // The first activity's result came from before the restart (history), the second from after.
    expect(done.output).toEqual(['done a', 'done again b', 600_000]);
    expect(await nonDeterministicEpisodes(after, 'restart-1', flow)).toEqual([]);
  });

  it('runs again an activity that was running when the engine stopped', async () => {
    const instances = store();
    let release: (() => void) | undefined;
    const before = engineWith(
      {
        // Never answers before the "crash".
        step: () =>
          new Promise<string>(
            (resolve) =>
              (release = () => {
                resolve('too late');
              }),
          ),
      },
      instances,
    );
    before.start('flow', 'crash-1', { big: '' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const calls: unknown[] = [];
    const after = engineWith(
      {
        step: (input) => {
          calls.push(input);
          return `rerun ${String(input)}`;
        },
      },
      instances,
    );
    expect(await after.restore()).toBe(1);
    await after.idle();
    after.advance(3_600_000);
    expect((await after.whenDone('crash-1')).output).toEqual(['rerun a', 'rerun b', 0]);
    expect(calls).toEqual(['a', 'b']);
    release?.();
  });

  it('forgets a purged instance', async () => {
    const instances = store();
    const engine = engineWith({ step: (input) => input }, instances);
    engine.start('flow', 'purge-1', { big: '' });
    await engine.idle();
    engine.advance(3_600_000);
    await engine.whenDone('purge-1');
    await engine.idle();
    expect(engine.purge('purge-1')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await instances.loadAll()).toEqual([]);
  });

  it('never breaks restore() when a save stops half-way: the previous snapshot or the new one, whole', async () => {
    // Sizes: one row (inline), two rows (one transaction), three rows of 1.2 M characters (row by row).
    for (const [before, after] of [
      [600_000, 1_200_000],
      [1_200_000, 600_000],
      [1_000, 1_200_000],
      [1_200_000, 1_000],
    ] as const) {
      for (let writes = 0; writes <= 5; writes++) {
        const name = `partial${Date.now().toString(36)}${writes}`;
        const first = snapshotOf('partial-1', 'a'.repeat(before));
        const second = snapshotOf('partial-1', 'b'.repeat(after));
        await store(name).save(first);
        const dying = crashingStore(name, writes);
        await dying.loadAll();
        await dying.save(second).catch(() => undefined);
        const restored = await store(name).loadAll();
        expect(restored, `${before} → ${after} after ${writes} writes`).toHaveLength(1);
        expect([first.input, second.input]).toContain(restored[0]?.input);
        // And the store goes on: the next save and load are whole again.
        const next = store(name);
        await next.loadAll();
        await next.save(second);
        expect((await store(name).loadAll())[0]?.input).toBe(second.input);
      }
    }
  }, 120_000);

  it('has the instance in the store when a start through the workflow client returns (before its 202)', async () => {
    const name = `started${Date.now().toString(36)}`;
    const engine = engineWith({ step: (input) => input }, store(name));
    await engineWorkflowClient(engine).start('flow', 'saved-1', { big: '' });
    const stored = await store(name).loadAll();
    expect(stored.map((s) => s.instanceId)).toEqual(['saved-1']);
    await engine.idle();
  });
});
