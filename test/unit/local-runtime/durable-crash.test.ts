/**
 * A crash between any two saves of the durable engine's store: the engine saves one instance at a time, so a
 * kill can leave a parent saved without its new child, or a child saved as finished while its parent's saved
 * state still waits for it. Whatever prefix of the saves survived, a restored engine must finish every
 * orchestration with the output an uninterrupted run gives (activities may run again: at-least-once).
 */
import type { OrchestrationContext } from 'durable-functions';
import { describe, expect, it } from 'vitest';
import {
  DurableEngine,
  EventType,
  type ActivityHandler,
  type InstanceSnapshot,
  type InstanceStore,
  type OrchestratorHandler,
} from '../../../tools/local-runtime/durable-engine.js';
import { REPLAY_SCHEMAS, orchestrator, type ReplaySchemaName } from '../../support/durable.js';

const START = new Date('2026-01-01T00:00:00Z');

/** Keeps every save (as JSON, as a real store would) in order; `upTo(k)` is what a kill after save k leaves. */
class RecordingStore implements InstanceStore {
  readonly saves: { id: string; snapshot?: InstanceSnapshot }[] = [];

  constructor(
    readonly kept = new Map<string, InstanceSnapshot>(),
    /** Load children before parents (a store returns instances in no particular order). */
    private readonly reverse = false,
  ) {}

  async save(snapshot: InstanceSnapshot): Promise<void> {
    const copy = JSON.parse(JSON.stringify(snapshot)) as InstanceSnapshot;
    // A write takes a turn of the event loop, as a real one does: work settles between saves.
    await new Promise((resolve) => setImmediate(resolve));
    this.saves.push({ id: snapshot.instanceId, snapshot: copy });
    this.kept.set(snapshot.instanceId, copy);
  }

  loadAll(): Promise<InstanceSnapshot[]> {
    const all = [...this.kept.values()].map((s) => JSON.parse(JSON.stringify(s)) as InstanceSnapshot);
    return Promise.resolve(this.reverse ? all.reverse() : all);
  }

  delete(instanceId: string): Promise<void> {
    this.saves.push({ id: instanceId });
    this.kept.delete(instanceId);
    return Promise.resolve();
  }

  /** The store as a kill right after the first `k` writes leaves it. */
  upTo(k: number, reverse = false): RecordingStore {
    const kept = new Map<string, InstanceSnapshot>();
    for (const { id, snapshot } of this.saves.slice(0, k)) {
      if (snapshot) kept.set(id, snapshot);
      else kept.delete(id);
    }
    return new RecordingStore(kept, reverse);
  }
}

const child = orchestrator(function* (context: OrchestrationContext) {
  const n = context.df.getInput<number>();
  const doubled = (yield context.df.callActivity('double', n)) as number;
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + n * 60_000));
  return doubled + 1;
});

/** Waves of sub-orchestrations (as bulk provisioning runs its chunks), an activity between and after them. */
const parent = orchestrator(function* (context: OrchestrationContext) {
  const first = (yield context.df.Task.all(
    [1, 2, 3].map((n) => context.df.callSubOrchestrator('child', n, `${context.df.instanceId}:chunk:${n}`)),
  )) as number[];
  const middle = (yield context.df.callActivity('double', 100)) as number;
  const second: number[] = [];
  for (const n of [4, 5]) {
    second.push(
      (yield context.df.callSubOrchestrator('child', n, `${context.df.instanceId}:chunk:${n}`)) as number,
    );
  }
  const last = (yield context.df.callActivity('double', 1000)) as number;
  return { first, middle, second, last };
});

/** Tasks of the instance's last execution that received more than one sub-orchestration outcome. */
function tasksAnsweredTwice(engine: DurableEngine, instanceId: string): number[] {
  const seen = new Map<number, number>();
  for (const e of engine.executions(instanceId).at(-1)?.history ?? []) {
    if (
      e.EventType === EventType.SubOrchestrationInstanceCompleted ||
      e.EventType === EventType.SubOrchestrationInstanceFailed
    ) {
      const task = e.TaskScheduledId as number;
      seen.set(task, (seen.get(task) ?? 0) + 1);
    }
  }
  return [...seen].filter(([, n]) => n > 1).map(([task]) => task);
}

const EXPECTED = { first: [3, 5, 7], middle: 200, second: [9, 11], last: 2000 };

function engineOver(
  store: InstanceStore,
  calls: unknown[],
  replaySchema: ReplaySchemaName = 'latest',
): DurableEngine {
  const double: ActivityHandler = (input) => {
    calls.push(input);
    return (input as number) * 2;
  };
  return new DurableEngine({
    orchestrators: new Map<string, OrchestratorHandler>([
      ['parent', parent],
      ['child', child],
    ]),
    activities: new Map([['double', double]]),
    clock: 'virtual',
    startTime: START,
    store,
    replaySchema,
  });
}

describe.each(REPLAY_SCHEMAS)('local durable engine: a kill between any two saves (schema %s)', (schema) => {
  it('a restored engine finishes parent and children with the uninterrupted output, whatever prefix of saves survived', async () => {
    const store = new RecordingStore();
    const whole = engineOver(store, [], schema);
    await whole.startDurably('parent', 'run', undefined);
    expect((await whole.whenDone('run')).output).toEqual(EXPECTED);
    await whole.idle();
    const writes = store.saves.length;
    expect(writes).toBeGreaterThan(20);

    const stuck: string[] = [];
    // k = 0 is a kill before the start was saved: nothing was acknowledged, nothing is restored.
    for (const reverse of [false, true]) {
      for (let k = 1; k <= writes; k++) {
        const restored = engineOver(store.upTo(k, reverse), [], schema);
        await restored.restore();
        await restored.idle();
        const status = restored.status('run');
        const children = [1, 2, 3, 4, 5].map(
          (n) => restored.status(`run:chunk:${n}`)?.runtimeStatus ?? 'none',
        );
        const at = `after save ${k}${reverse ? ' (children loaded first)' : ''}`;
        if (
          status?.runtimeStatus !== 'Completed' ||
          JSON.stringify(status.output) !== JSON.stringify(EXPECTED)
        ) {
          stuck.push(`${at}: parent ${status?.runtimeStatus ?? 'none'}, chunks ${children.join(',')}`);
        } else if (children.some((c) => c !== 'Completed')) {
          stuck.push(`${at}: chunks ${children.join(',')}`);
        }
        const twice = tasksAnsweredTwice(restored, 'run');
        if (twice.length > 0) stuck.push(`${at}: outcome delivered twice to task ${twice.join(',')}`);
      }
    }
    expect(stuck).toEqual([]);
  });

  it('a parent that continues as new and starts a child of the same id again gets the new child, not the old outcome', async () => {
    const rounds = orchestrator(function* (context: OrchestrationContext) {
      const round = context.df.getInput<number>();
      const result = (yield context.df.callSubOrchestrator(
        'child',
        round,
        `${context.df.instanceId}:child`,
      )) as number;
      if (round < 3) {
        context.df.continueAsNew(round + 1);
        return undefined;
      }
      return result;
    });
    const calls: unknown[] = [];
    const engine = new DurableEngine({
      orchestrators: new Map<string, OrchestratorHandler>([
        ['rounds', rounds],
        ['child', child],
      ]),
      activities: new Map<string, ActivityHandler>([['double', (n) => (calls.push(n), (n as number) * 2)]]),
      clock: 'virtual',
      startTime: START,
      replaySchema: schema,
    });
    engine.start('rounds', 'r', 1);
    expect((await engine.whenDone('r')).output).toBe(7);
    expect(calls).toEqual([1, 2, 3]);
  });
});

describe('local durable engine: the shutdown stops dispatching before the last save', () => {
  it('lets the running activity finish, starts nothing after it, and a restart goes on from its outcome', async () => {
    const steps = orchestrator(function* (context: OrchestrationContext) {
      const a = (yield context.df.callActivity('step', 'a')) as string;
      yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 1000));
      const b = (yield context.df.callActivity('step', 'b')) as string;
      return [a, b];
    });
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const calls: string[] = [];
    const engineWith = (store: InstanceStore, step: ActivityHandler) =>
      new DurableEngine({
        orchestrators: new Map<string, OrchestratorHandler>([['steps', steps]]),
        activities: new Map([['step', step]]),
        clock: 'virtual',
        startTime: START,
        store,
      });
    const store = new RecordingStore();
    const first = engineWith(store, async (input) => {
      calls.push(String(input));
      if (input === 'a') await held;
      return `${String(input)}!`;
    });
    await first.startDurably('steps', 's', undefined);
    while (calls.length === 0) await new Promise((resolve) => setImmediate(resolve));

    first.stopDispatching();
    release();
    await first.idle();
    await first.saveAll();
    // 'a' finished, but neither its timer nor 'b' ran after the stop.
    expect(calls).toEqual(['a']);
    expect(first.status('s')?.runtimeStatus).toBe('Running');

    const again: string[] = [];
    const second = engineWith(store.upTo(store.saves.length), (input) => {
      again.push(String(input));
      return `${String(input)}!`;
    });
    await second.restore();
    expect((await second.whenDone('s')).output).toEqual(['a!', 'b!']);
    // Only what had not run yet runs after the restart.
    expect(again).toEqual(['b']);
  });
});

/** An engine over `store` (or in memory) with the given orchestrators and a `double` activity. */
const engineOf = (orchestrators: Record<string, OrchestratorHandler>, store?: InstanceStore, more = {}) =>
  new DurableEngine({
    orchestrators: new Map(Object.entries(orchestrators)),
    activities: new Map<string, ActivityHandler>(
      Object.entries({ double: (n: unknown) => (n as number) * 2, ...more }),
    ),
    clock: 'virtual',
    startTime: START,
    ...(store ? { store } : {}),
  });

describe('local durable engine: a sub-orchestration outcome reaches the execution that waits for it, once', () => {
  it('a parent started again under the same id runs its child again (the previous run’s child is not adopted)', async () => {
    const once = orchestrator(function* (context: OrchestrationContext) {
      const n = context.df.getInput<number>();
      return (yield context.df.callSubOrchestrator('child', n, `${context.df.instanceId}:c`)) as number;
    });
    const engine = engineOf({ once, child });
    engine.start('once', 'P', 1);
    expect((await engine.whenDone('P')).output).toBe(3);
    engine.start('once', 'P', 10);
    expect((await engine.whenDone('P')).output).toBe(21);
  });

  it('a child of an earlier execution does not answer a task of the next one', async () => {
    const slow = orchestrator(function* (context: OrchestrationContext) {
      yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 10 * 60_000));
      return 'old child';
    });
    const flow = orchestrator(function* (context: OrchestrationContext) {
      if (context.df.getInput<number>() === 1) {
        const timer = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 60_000));
        yield context.df.Task.any([context.df.callSubOrchestrator('slow', null, 'p:slow'), timer]);
        context.df.continueAsNew(2);
        return undefined;
      }
      // Task 0 of this execution is a timer; the first execution's child (task 0 there) ends before it fires.
      const fired: unknown = yield context.df.createTimer(
        new Date(context.df.currentUtcDateTime.getTime() + 20 * 60_000),
      );
      return fired ?? 'timer';
    });
    const engine = engineOf({ flow, slow });
    engine.start('flow', 'p', 1);
    expect((await engine.whenDone('p')).output).toBe('timer');
  });

  it('a parent saved with its child’s outcome while the child’s save is older: the child runs again, its outcome is not delivered twice', async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let started = 0;
    const gated = async (n: unknown) => {
      started++;
      await gate;
      return (n as number) * 2;
    };
    const both = orchestrator(function* (context: OrchestrationContext) {
      const pair = (yield context.df.Task.all([
        context.df.callSubOrchestrator('slowChild', 1, 'run:x'),
        context.df.callActivity('gated', 7),
      ])) as number[];
      const last = (yield context.df.waitForExternalEvent('done')) as number;
      return [...pair, last];
    });
    const slowChild = orchestrator(function* (context: OrchestrationContext) {
      return ((yield context.df.callActivity('gated', context.df.getInput<number>())) as number) + 1;
    });
    const store = new RecordingStore();
    const whole = engineOf({ both, slowChild }, store, { gated });
    await whole.startDurably('both', 'run', undefined);
    while (started < 2) await new Promise((resolve) => setImmediate(resolve));
    open();
    await whole.idle();
    whole.raiseEvent('run', 'done', 200);
    await whole.whenDone('run');
    await whole.idle();

    const wrong: string[] = [];
    for (let k = 1; k <= store.saves.length; k++) {
      const restored = engineOf({ both, slowChild }, store.upTo(k), { gated });
      await restored.restore();
      await restored.idle();
      if (restored.status('run')?.runtimeStatus === 'Running') restored.raiseEvent('run', 'done', 200);
      const done = await restored.whenDone('run');
      if (JSON.stringify(done.output) !== '[3,14,200]')
        wrong.push(`after save ${k}: ${JSON.stringify(done.output)}`);
      const twice = tasksAnsweredTwice(restored, 'run');
      if (twice.length > 0) wrong.push(`after save ${k}: task ${twice.join(',')} answered twice`);
    }
    expect(wrong).toEqual([]);
  });

  it('a data folder from before execution ids: a parent continuing as new gets each new child’s outcome, not the old one', async () => {
    const rounds = orchestrator(function* (context: OrchestrationContext) {
      const round = context.df.getInput<number>();
      const result = (yield context.df.callSubOrchestrator('child', round, 'r:child')) as number;
      yield context.df.waitForExternalEvent('go');
      if (round < 3) {
        context.df.continueAsNew(round + 1);
        return undefined;
      }
      return result;
    });
    const store = new RecordingStore();
    const first = engineOf({ rounds, child }, store);
    await first.startDurably('rounds', 'r', 1);
    await first.idle();
    await first.saveAll();
    // As a snapshot written before execution ids were recorded keeps the child's link.
    const legacy = store.kept.get('r:child');
    expect(legacy?.parent?.executionId).toBeDefined();
    delete legacy?.parent?.executionId;
    const second = engineOf({ rounds, child }, new RecordingStore(store.kept));
    await second.restore();
    for (let round = 1; round <= 3; round++) {
      await second.idle();
      second.raiseEvent('r', 'go', null);
    }
    expect((await second.whenDone('r')).output).toBe(7);
  });

  it('restore does not stop when a lost child’s orchestrator no longer exists: the parent hears of a failed child', async () => {
    const store = new RecordingStore();
    const whole = engineOver(store, []);
    await whole.startDurably('parent', 'run', undefined);
    await whole.whenDone('run');
    // What is left when only the parent's save naming its first children survived.
    const named = store.saves.find((s) =>
      s.snapshot?.history.some((e) => e.EventType === EventType.SubOrchestrationInstanceCreated),
    )?.snapshot;
    expect(named).toBeDefined();
    const onlyParent = new RecordingStore(new Map([['run', named as InstanceSnapshot]]));
    const renamed = engineOf({ parent }, onlyParent);
    await renamed.restore();
    const done = await renamed.whenDone('run');
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(/No orchestrator named 'child'/);
  });
});
