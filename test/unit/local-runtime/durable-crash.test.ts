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
  type ActivityHandler,
  type InstanceSnapshot,
  type InstanceStore,
  type OrchestratorHandler,
} from '../../../tools/local-runtime/durable-engine.js';
import { orchestrator } from '../../support/durable.js';

const START = new Date('2026-01-01T00:00:00Z');

/** Keeps every save (as JSON, as a real store would) in order; `upTo(k)` is what a kill after save k leaves. */
class RecordingStore implements InstanceStore {
  readonly saves: { id: string; snapshot?: InstanceSnapshot }[] = [];

  constructor(private readonly kept = new Map<string, InstanceSnapshot>()) {}

  async save(snapshot: InstanceSnapshot): Promise<void> {
    const copy = JSON.parse(JSON.stringify(snapshot)) as InstanceSnapshot;
    // A write takes a turn of the event loop, as a real one does: work settles between saves.
    await new Promise((resolve) => setImmediate(resolve));
    this.saves.push({ id: snapshot.instanceId, snapshot: copy });
    this.kept.set(snapshot.instanceId, copy);
  }

  loadAll(): Promise<InstanceSnapshot[]> {
    return Promise.resolve(
      [...this.kept.values()].map((s) => JSON.parse(JSON.stringify(s)) as InstanceSnapshot),
    );
  }

  delete(instanceId: string): Promise<void> {
    this.saves.push({ id: instanceId });
    this.kept.delete(instanceId);
    return Promise.resolve();
  }

  /** The store as a kill right after the first `k` writes leaves it. */
  upTo(k: number): RecordingStore {
    const kept = new Map<string, InstanceSnapshot>();
    for (const { id, snapshot } of this.saves.slice(0, k)) {
      if (snapshot) kept.set(id, snapshot);
      else kept.delete(id);
    }
    return new RecordingStore(kept);
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

const EXPECTED = { first: [3, 5, 7], middle: 200, second: [9, 11], last: 2000 };

function engineOver(store: InstanceStore, calls: unknown[]): DurableEngine {
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
  });
}

describe('local durable engine: a kill between any two saves', () => {
  it('a restored engine finishes parent and children with the uninterrupted output, whatever prefix of saves survived', async () => {
    const store = new RecordingStore();
    const whole = engineOver(store, []);
    await whole.startDurably('parent', 'run', undefined);
    expect((await whole.whenDone('run')).output).toEqual(EXPECTED);
    await whole.idle();
    const writes = store.saves.length;
    expect(writes).toBeGreaterThan(20);

    const stuck: string[] = [];
    // k = 0 is a kill before the start was saved: nothing was acknowledged, nothing is restored.
    for (let k = 1; k <= writes; k++) {
      const calls: unknown[] = [];
      const restored = engineOver(store.upTo(k), calls);
      await restored.restore();
      await restored.idle();
      const status = restored.status('run');
      const children = [1, 2, 3, 4, 5].map((n) => restored.status(`run:chunk:${n}`)?.runtimeStatus ?? 'none');
      if (
        status?.runtimeStatus !== 'Completed' ||
        JSON.stringify(status.output) !== JSON.stringify(EXPECTED)
      ) {
        stuck.push(
          `after save ${k}: parent ${status?.runtimeStatus ?? 'none'}, chunks ${children.join(',')}`,
        );
      } else if (children.some((c) => c !== 'Completed')) {
        stuck.push(`after save ${k}: chunks ${children.join(',')}`);
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
