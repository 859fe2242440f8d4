/**
 * Continue-as-new as the Durable extension does it for Node: durable-js's `continueAsNew(input)` has no
 * `preserveUnprocessedEvents`, and the extension's default is false, so an event raised while the episode that
 * continues as new is being processed is dropped; the next execution never sees it.
 */
import type { OrchestrationContext } from 'durable-functions';
import { describe, expect, it } from 'vitest';
import { DurableEngine, type OrchestratorHandler } from '../../../tools/local-runtime/durable-engine.js';
import { EventType } from '../../../tools/local-runtime/durable-history.js';
import { REPLAY_SCHEMAS, orchestrator } from '../../support/durable.js';

const hasContinueAsNew = (state: unknown) =>
  JSON.stringify((state as { actions?: unknown }).actions ?? []).includes('"actionType":4');

describe.each(REPLAY_SCHEMAS)('local durable engine: continue-as-new (schema %s)', (schema) => {
  it('drops an event raised while the episode that continues as new runs', async () => {
    const loop = orchestrator(function* (context: OrchestrationContext) {
      const n = context.df.getInput<number>();
      if (n === 1) {
        yield context.df.createTimer(context.df.currentUtcDateTime);
        context.df.continueAsNew(2);
        return undefined;
      }
      const timer = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 3_600_000));
      const ping = context.df.waitForExternalEvent('ping');
      const winner: unknown = yield context.df.Task.any([timer, ping]);
      if (winner === ping) {
        timer.cancel();
        return 'pinged';
      }
      return 'timed out';
    });
    const held: { engine?: DurableEngine } = {};
    let raised = false;
    // The event arrives while the orchestrator computes the episode that answers continue-as-new.
    const raising: OrchestratorHandler = async (trigger, context) => {
      const state = await loop(trigger, context);
      if (!raised && hasContinueAsNew(state)) {
        raised = true;
        held.engine?.raiseEvent('c1', 'ping', { during: 'continue-as-new' });
      }
      return state;
    };
    const engine = new DurableEngine({
      orchestrators: new Map([['loop', raising]]),
      activities: new Map(),
      clock: 'manual',
      replaySchema: schema,
    });
    held.engine = engine;
    engine.start('loop', 'c1', 1);
    await engine.idle();
    expect(raised).toBe(true);
    expect(engine.executions('c1').map((e) => e.input)).toEqual([1, 2]);
    expect(engine.status('c1')?.runtimeStatus).toBe('Running');
    const second = engine.executions('c1')[1]?.history ?? [];
    expect(second.filter((e) => e.EventType === EventType.EventRaised)).toEqual([]);
    engine.advance(3_600_000);
    expect((await engine.whenDone('c1')).output).toBe('timed out');
  });
});
