import * as df from 'durable-functions';
import type { OrchestrationContext } from 'durable-functions';
import { describe, expect, it } from 'vitest';
import {
  DurableEngine,
  type ActivityHandler,
  type OrchestratorHandler,
} from '../../../tools/local-runtime/durable-engine.js';
import {
  REPLAY_SCHEMAS,
  nonDeterministicEpisodes,
  orchestrator,
  type ReplaySchemaName,
} from '../../support/durable.js';

const START = new Date('2026-01-01T00:00:00Z');

function engineUnder(
  replaySchema: ReplaySchemaName,
  orchestrators: Record<string, OrchestratorHandler>,
  activities: Record<string, ActivityHandler>,
  clock: 'virtual' | 'manual' = 'virtual',
): DurableEngine {
  return new DurableEngine({
    orchestrators: new Map(Object.entries(orchestrators)),
    activities: new Map(Object.entries(activities)),
    clock,
    startTime: START,
    replaySchema,
  });
}

describe.each(REPLAY_SCHEMAS)(
  'local durable engine (durable-functions replay protocol, schema %s)',
  (schema) => {
    const engineWith = (
      orchestrators: Record<string, OrchestratorHandler>,
      activities: Record<string, ActivityHandler>,
      clock: 'virtual' | 'manual' = 'virtual',
    ) => engineUnder(schema, orchestrators, activities, clock);

    it('runs activities in sequence and in parallel, and completes with the output', async () => {
      const calls: unknown[] = [];
      const flow = orchestrator(function* (context: OrchestrationContext) {
        const a = (yield context.df.callActivity('double', 2)) as number;
        const many = (yield context.df.Task.all([
          context.df.callActivity('double', a),
          context.df.callActivity('double', 'x'),
        ])) as unknown[];
        return { a, many };
      });
      const engine = engineWith(
        { flow },
        {
          double: (input) => {
            calls.push(input);
            return typeof input === 'number' ? input * 2 : `${String(input)}${String(input)}`;
          },
        },
      );
      engine.start('flow', 'i1', { any: 'input' });
      const done = await engine.whenDone('i1');
      expect(done.runtimeStatus).toBe('Completed');
      expect(done.output).toEqual({ a: 4, many: [8, 'xx'] });
      expect(calls).toEqual([2, 4, 'x']);
      expect(await nonDeterministicEpisodes(engine, 'i1', flow)).toEqual([]);
    });

    it('retries a failing activity with back-off timers and then succeeds; time only advances by timers', async () => {
      let attempts = 0;
      const flow = orchestrator(function* (context: OrchestrationContext) {
        const options = new df.RetryOptions(1000, 4);
        options.backoffCoefficient = 2;
        const result: unknown = yield context.df.callActivityWithRetry('flaky', options, 'go');
        return { result, at: context.df.currentUtcDateTime.toISOString() };
      });
      const engine = engineWith(
        { flow },
        {
          flaky: () => {
            attempts++;
            if (attempts < 3) throw new Error(`attempt ${attempts} failed`);
            return 'ok';
          },
        },
      );
      engine.start('flow', 'r1');
      const done = await engine.whenDone('r1');
      expect(done.runtimeStatus).toBe('Completed');
      expect(attempts).toBe(3);
      // Back-off 1 s then 2 s.
      expect(done.output).toEqual({ result: 'ok', at: new Date(START.getTime() + 3000).toISOString() });
      expect(await nonDeterministicEpisodes(engine, 'r1', flow)).toEqual([]);
    });

    it('fails the orchestration when every retry attempt fails, with the activity error in the message', async () => {
      let attempts = 0;
      const flow = orchestrator(function* (context: OrchestrationContext) {
        yield context.df.callActivityWithRetry('broken', new df.RetryOptions(10, 3), null);
      });
      const engine = engineWith(
        { flow },
        {
          broken: () => {
            attempts++;
            throw new Error('hook answered 500');
          },
        },
      );
      engine.start('flow', 'f1');
      const done = await engine.whenDone('f1');
      expect(done.runtimeStatus).toBe('Failed');
      expect(attempts).toBe(3);
      expect(String(done.output)).toContain('hook answered 500');
    });

    it('lets the orchestrator catch an activity failure and compensate', async () => {
      const flow = orchestrator(function* (context: OrchestrationContext) {
        try {
          yield context.df.callActivity('broken');
          return 'unexpected';
        } catch (error) {
          yield context.df.callActivity('undo', error instanceof Error ? error.message : 'x');
          return 'compensated';
        }
      });
      const undone: unknown[] = [];
      const engine = engineWith(
        { flow },
        {
          broken: () => {
            throw new RangeError('nope');
          },
          undo: (input) => undone.push(input),
        },
      );
      engine.start('flow', 'c1');
      expect((await engine.whenDone('c1')).output).toBe('compensated');
      // As the Durable extension reports it to Node orchestrators: the reason, then the details.
      expect(String(undone[0])).toMatch(
        /^Activity function 'broken' failed: Result: Failure\nException: nope\n/,
      );
    });

    it('fires durable timers on the virtual clock and runs sub-orchestrations', async () => {
      const child = orchestrator(function* (context: OrchestrationContext) {
        const n = context.df.getInput<number>();
        yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + n * 60_000));
        return n * 10;
      });
      const parent = orchestrator(function* (context: OrchestrationContext) {
        const results = (yield context.df.Task.all(
          [1, 2, 3].map((n) =>
            context.df.callSubOrchestrator('child', n, `${context.df.instanceId}:child:${n}`),
          ),
        )) as number[];
        return { results, at: context.df.currentUtcDateTime.toISOString() };
      });
      const engine = engineWith({ parent, child }, {});
      engine.start('parent', 'p1');
      const done = await engine.whenDone('p1');
      expect(done.output).toEqual({ results: [10, 20, 30], at: '2026-01-01T00:03:00.000Z' });
      expect(engine.status('p1:child:2')?.runtimeStatus).toBe('Completed');
      expect(await nonDeterministicEpisodes(engine, 'p1', parent)).toEqual([]);
      expect(await nonDeterministicEpisodes(engine, 'p1:child:3', child)).toEqual([]);
    });

    it('continues as new with a fresh history, keeping each execution', async () => {
      const loop = orchestrator(function* (context: OrchestrationContext) {
        const n = context.df.getInput<number>();
        yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 1000));
        if (n < 3) {
          context.df.continueAsNew(n + 1);
          return undefined;
        }
        return n;
      });
      const engine = engineWith({ loop }, {});
      engine.start('loop', 'l1', 1);
      const done = await engine.whenDone('l1');
      expect(done.output).toBe(3);
      expect(engine.executions('l1').map((e) => e.input)).toEqual([1, 2, 3]);
      expect(await nonDeterministicEpisodes(engine, 'l1', loop)).toEqual([]);
    });

    it('delivers external events that win a race against a timer, and cancels the losing timer', async () => {
      const wait = orchestrator(function* (context: OrchestrationContext) {
        const timer = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 3_600_000));
        const cancel = context.df.waitForExternalEvent('cancel');
        const winner: unknown = yield context.df.Task.any([timer, cancel]);
        if (winner === cancel) {
          timer.cancel();
          return { cancelled: cancel.result };
        }
        return 'timed out';
      });
      const engine = engineWith({ wait }, {}, 'manual');
      engine.start('wait', 'w1');
      engine.start('wait', 'w2');
      await engine.idle();
      expect(engine.status('w1')?.runtimeStatus).toBe('Running');
      engine.raiseEvent('w1', 'cancel', { by: 'test' });
      expect((await engine.whenDone('w1')).output).toEqual({ cancelled: { by: 'test' } });
      // w2's timer fires once the clock passes it, and a late event then finds nothing to cancel.
      engine.advance(3_600_000);
      expect((await engine.whenDone('w2')).output).toBe('timed out');
      expect(await nonDeterministicEpisodes(engine, 'w1', wait)).toEqual([]);
      expect(await nonDeterministicEpisodes(engine, 'w2', wait)).toEqual([]);
    });

    it('terminates a running instance and drops its pending work', async () => {
      const wait = orchestrator(function* (context: OrchestrationContext) {
        yield context.df.waitForExternalEvent('never');
      });
      const engine = engineWith({ wait }, {});
      engine.start('wait', 't1');
      await engine.idle();
      engine.terminate('t1', 'operator said stop');
      expect(engine.status('t1')).toMatchObject({
        runtimeStatus: 'Terminated',
        output: 'operator said stop',
      });
      expect(() => {
        engine.raiseEvent('t1', 'never');
      }).toThrow(/not running/);
    });

    it('refuses an action it cannot honour instead of hanging', async () => {
      const flow = orchestrator(function* (context: OrchestrationContext) {
        yield context.df.callActivity('missing');
      });
      const engine = engineWith({ flow }, {});
      engine.start('flow', 'm1');
      expect((await engine.whenDone('m1')).output).toMatch(/No activity named 'missing'/);
    });
  },
);
