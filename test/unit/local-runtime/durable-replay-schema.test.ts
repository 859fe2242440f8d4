/**
 * The replay schema the local engine announces. The Durable extension in Azure announces a schema newer than V1
 * (`upperSchemaVersionNew`), under which durable-functions answers with compound WhenAll/WhenAny actions and
 * (from V3) splits timers longer than `maximumShortTimerDuration` (6 days on Azure Storage) into segments of
 * `longRunningTimerIntervalDuration` (3 days), each its own TimerCreated/TimerFired with its own sequence number.
 */
import type { OrchestrationContext, Task } from 'durable-functions';
import { describe, expect, it } from 'vitest';
import {
  DurableEngine,
  EventType,
  type InstanceSnapshot,
  type InstanceStore,
  type OrchestratorHandler,
} from '../../../tools/local-runtime/durable-engine.js';
import { decode } from '../../../tools/local-runtime/durable-history.js';
import { nonDeterministicEpisodes, orchestrator, type ReplaySchemaName } from '../../support/durable.js';

const START = new Date('2026-01-01T00:00:00Z');
const DAY = 24 * 3600_000;

function engineUnder(
  replaySchema: ReplaySchemaName,
  flows: Record<string, OrchestratorHandler>,
): DurableEngine {
  return new DurableEngine({
    orchestrators: new Map(Object.entries(flows)),
    activities: new Map([['echo', (input: unknown) => input]]),
    clock: 'virtual',
    startTime: START,
    replaySchema,
  });
}

const fanOut = orchestrator(function* (context: OrchestrationContext) {
  const both = (yield context.df.Task.all([
    context.df.callActivity('echo', 'a'),
    context.df.callActivity('echo', 'b'),
  ])) as unknown[];
  const first = (yield context.df.Task.any([
    context.df.callActivity('echo', 'c'),
    context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 60_000)),
  ])) as Task;
  return { both, first: first.result };
});

/** Sleeps until 10 days after the start, or until a `wake` event. */
const tenDays = orchestrator(function* (context: OrchestrationContext) {
  const timer = context.df.createTimer(new Date(START.getTime() + 10 * DAY));
  const wake = context.df.waitForExternalEvent('wake');
  const winner = (yield context.df.Task.any([timer, wake])) as Task;
  if (winner === wake) timer.cancel();
  return { by: winner === wake ? 'wake' : 'timer', at: context.df.currentUtcDateTime.toISOString() };
});

const timerEvents = (engine: DurableEngine, id: string) =>
  (engine.executions(id)[0]?.history ?? [])
    .filter((e) => e.EventType === EventType.TimerCreated || e.EventType === EventType.TimerFired)
    .map((e) =>
      e.EventType === EventType.TimerCreated
        ? `created ${e.EventId} ${(e.FireAt as Date).toISOString()}`
        : `fired ${String(e.TimerId)}`,
    );

describe('local durable engine: the replay schema it announces', () => {
  it('speaks the latest schema by default: compound WhenAll/WhenAny actions, applied as their inner tasks', async () => {
    const engine = engineUnder('latest', { fanOut });
    expect(engine.replaySchema).toBe('latest');
    engine.start('fanOut', 'f');
    expect((await engine.whenDone('f')).output).toEqual({ both: ['a', 'b'], first: 'c' });
    const replies = engine.executions('f')[0]?.episodes.map((e) => JSON.parse(e.actions) as unknown) ?? [];
    // One list of actions; Task.all is a WhenAll (12) holding both calls, Task.any a WhenAny (11).
    expect(replies.at(-1)).toMatchObject([
      [
        { actionType: 12, compoundActions: [{ functionName: 'echo', input: '"a"' }, { input: '"b"' }] },
        { actionType: 11, compoundActions: [{ actionType: 0, input: '"c"' }, { actionType: 5 }] },
      ],
    ]);
    const scheduled = engine
      .executions('f')[0]
      ?.history.filter((e) => e.EventType === EventType.TaskScheduled);
    expect(scheduled?.map((e) => [e.EventId, decode(e.Input)])).toEqual([
      [0, '"a"'],
      [1, '"b"'],
      [2, '"c"'],
    ]);
    expect(await nonDeterministicEpisodes(engine, 'f', fanOut)).toEqual([]);
  });

  it('keeps V1 selectable: flat actions, one list per task', async () => {
    const engine = engineUnder('V1', { fanOut });
    engine.start('fanOut', 'f');
    expect((await engine.whenDone('f')).output).toEqual({ both: ['a', 'b'], first: 'c' });
    const last = JSON.stringify(engine.executions('f')[0]?.episodes.at(-1)?.actions);
    expect(last).not.toContain('compoundActions');
    expect(await nonDeterministicEpisodes(engine, 'f', fanOut)).toEqual([]);
  });

  it('splits a 10-day timer into segments of 3 days (the last ending on time), each its own sequence number', async () => {
    const engine = engineUnder('latest', { tenDays });
    engine.start('tenDays', 't');
    expect((await engine.whenDone('t')).output).toEqual({
      by: 'timer',
      at: new Date(START.getTime() + 10 * DAY).toISOString(),
    });
    expect(timerEvents(engine, 't')).toEqual([
      `created 0 ${new Date(START.getTime() + 3 * DAY).toISOString()}`,
      'fired 0',
      `created 1 ${new Date(START.getTime() + 6 * DAY).toISOString()}`,
      'fired 1',
      `created 2 ${new Date(START.getTime() + 10 * DAY).toISOString()}`,
      'fired 2',
    ]);
    expect(await nonDeterministicEpisodes(engine, 't', tenDays)).toEqual([]);
  });

  it('under V1 a 10-day timer is one timer', async () => {
    const engine = engineUnder('V1', { tenDays });
    engine.start('tenDays', 't');
    expect((await engine.whenDone('t')).output).toMatchObject({ by: 'timer' });
    expect(timerEvents(engine, 't')).toEqual([
      `created 0 ${new Date(START.getTime() + 10 * DAY).toISOString()}`,
      'fired 0',
    ]);
  });

  it('a cancelled long timer fires no further segment', async () => {
    const engine = new DurableEngine({
      orchestrators: new Map([['tenDays', tenDays]]),
      activities: new Map(),
      clock: 'manual',
      startTime: START,
    });
    engine.start('tenDays', 't');
    await engine.idle();
    engine.advance(3 * DAY);
    await engine.idle();
    engine.advance(DAY);
    await engine.idle();
    engine.raiseEvent('t', 'wake');
    expect((await engine.whenDone('t')).output).toEqual({
      by: 'wake',
      at: new Date(START.getTime() + 4 * DAY).toISOString(),
    });
    engine.advance(10 * DAY);
    await engine.idle();
    expect(timerEvents(engine, 't')).toEqual([
      `created 0 ${new Date(START.getTime() + 3 * DAY).toISOString()}`,
      'fired 0',
      `created 1 ${new Date(START.getTime() + 6 * DAY).toISOString()}`,
    ]);
    expect(await nonDeterministicEpisodes(engine, 't', tenDays)).toEqual([]);
  });

  it('a long timer survives a restart between its segments', async () => {
    const store = new MemoryStore();
    const first = manualEngine('latest', store);
    await first.startDurably('tenDays', 't');
    await first.idle();
    first.advance(3 * DAY);
    await first.idle();
    first.stopDispatching();
    await first.saveAll();

    const second = manualEngine('latest', store, new Date(START.getTime() + 3 * DAY));
    await second.restore();
    second.advance(3 * DAY);
    await second.idle();
    second.advance(4 * DAY);
    expect((await second.whenDone('t')).output).toEqual({
      by: 'timer',
      at: new Date(START.getTime() + 10 * DAY).toISOString(),
    });
    expect(timerEvents(second, 't')).toEqual([
      `created 0 ${new Date(START.getTime() + 3 * DAY).toISOString()}`,
      'fired 0',
      `created 1 ${new Date(START.getTime() + 6 * DAY).toISOString()}`,
      'fired 1',
      `created 2 ${new Date(START.getTime() + 10 * DAY).toISOString()}`,
      'fired 2',
    ]);
  });

  it('an instance saved before the engine spoke more than V1 goes on under V1 (its task numbering)', async () => {
    const store = new MemoryStore();
    const old = manualEngine('V1', store);
    await old.startDurably('tenDays', 't');
    await old.idle();
    old.stopDispatching();
    await old.saveAll();
    // As written by the engine before replay schemas: no schema in the snapshot.
    for (const [id, json] of store.kept) {
      const { replaySchema: _dropped, ...snapshot } = JSON.parse(json) as InstanceSnapshot;
      store.kept.set(id, JSON.stringify(snapshot));
    }
    const upgraded = manualEngine('latest', store);
    await upgraded.restore();
    upgraded.advance(10 * DAY);
    expect((await upgraded.whenDone('t')).output).toMatchObject({ by: 'timer' });
    expect(upgraded.replaySchemaOf('t')).toBe('V1');
  });
});

class MemoryStore implements InstanceStore {
  readonly kept = new Map<string, string>();
  save(snapshot: InstanceSnapshot): Promise<void> {
    this.kept.set(snapshot.instanceId, JSON.stringify(snapshot));
    return Promise.resolve();
  }
  loadAll(): Promise<InstanceSnapshot[]> {
    return Promise.resolve([...this.kept.values()].map((s) => JSON.parse(s) as InstanceSnapshot));
  }
  delete(instanceId: string): Promise<void> {
    this.kept.delete(instanceId);
    return Promise.resolve();
  }
}

function manualEngine(
  replaySchema: ReplaySchemaName,
  store: InstanceStore,
  startTime = START,
): DurableEngine {
  return new DurableEngine({
    orchestrators: new Map([['tenDays', tenDays]]),
    activities: new Map(),
    clock: 'manual',
    startTime,
    store,
    replaySchema,
  });
}
