import { DummyOrchestrationContext } from 'durable-functions';
import {
  REPLAY_SCHEMAS,
  orchestrationTrigger,
  type ReplaySchemaName,
} from '../../tools/local-runtime/durable-actions.js';
import {
  DurableEngine,
  type ActivityHandler,
  type OrchestratorHandler,
} from '../../tools/local-runtime/durable-engine.js';
import { orchestratorListener } from '../../tools/local-runtime/orchestrator-listener.js';
import { byTrigger, type Registration } from './entry-point.js';

/** The library's own orchestrator listener around `fn`: exactly what `df.app.orchestration` registers. */
export const orchestrator = orchestratorListener;

export { REPLAY_SCHEMAS, type ReplaySchemaName };

/**
 * The replay schema the orchestrator tests run under: `DURABLE_REPLAY_SCHEMA` (V1 or latest), set per vitest
 * project (vitest.config.ts runs the workflow suites once more as `integration-v1`), else the latest.
 */
export function replaySchemaUnderTest(): ReplaySchemaName {
  const named = process.env.DURABLE_REPLAY_SCHEMA;
  if (named === undefined || named === '') return 'latest';
  if (!(REPLAY_SCHEMAS as readonly string[]).includes(named)) {
    throw new Error(`DURABLE_REPLAY_SCHEMA must be one of ${REPLAY_SCHEMAS.join(', ')}, not '${named}'.`);
  }
  return named as ReplaySchemaName;
}

/**
 * Replays every recorded episode of every execution of an instance (each history prefix the orchestrator
 * saw) through the orchestrator again, under the engine's replay schema, and returns the episodes whose actions
 * (as the orchestrator answered them, compound actions included) differ: empty when deterministic.
 */
export async function nonDeterministicEpisodes(
  engine: DurableEngine,
  instanceId: string,
  handler: OrchestratorHandler,
): Promise<string[]> {
  const differences: string[] = [];
  const name = engine.status(instanceId)?.name ?? 'orchestrator';
  for (const [n, execution] of engine.executions(instanceId).entries()) {
    for (const episode of execution.episodes) {
      const history = execution.history.slice(0, episode.historyLength);
      const trigger = orchestrationTrigger(
        { history, input: execution.input, instanceId },
        episode.replaySchema ?? engine.replaySchema,
        true,
      );
      let state: unknown;
      try {
        state = await handler(trigger, new DummyOrchestrationContext(name, 'replay', () => undefined));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        state = JSON.parse(message.slice(message.indexOf('$OutOfProcData$:') + '$OutOfProcData$:'.length));
      }
      const actions = JSON.stringify((state as { actions: unknown[][] }).actions);
      if (actions !== episode.actions)
        differences.push(`execution ${n}, history length ${episode.historyLength}`);
    }
  }
  return differences;
}

/**
 * A durable engine running exactly the orchestrators and activities the entry point registered; `beforeActivity`
 * (tests that inject an event while an activity runs) is called as each activity starts; when it returns a
 * promise, the activity runs once that settles (a test holds an activity while it acts).
 */
export function engineFromRegistrations(
  registrations: readonly Registration[],
  clock: 'virtual' | 'manual' = 'virtual',
  beforeActivity?: (name: string, input: unknown) => Promise<void> | void,
  replaySchema: ReplaySchemaName = replaySchemaUnderTest(),
): DurableEngine {
  const activities = byTrigger(registrations, 'activityTrigger') as ReadonlyMap<string, ActivityHandler>;
  return new DurableEngine({
    orchestrators: byTrigger(registrations, 'orchestrationTrigger'),
    activities: beforeActivity
      ? new Map(
          [...activities].map(([name, handler]): [string, ActivityHandler] => [
            name,
            (input, context) => {
              const held = beforeActivity(name, input);
              return held instanceof Promise
                ? held.then(() => handler(input, context))
                : handler(input, context);
            },
          ]),
        )
      : activities,
    clock,
    replaySchema,
  });
}

/** Every history event, status and output of an instance and its sub-orchestrations, as one string to search. */
export function everythingRecorded(engine: DurableEngine, instanceIdPrefix: string): string {
  return JSON.stringify(
    engine
      .list()
      .filter((s) => s.instanceId.startsWith(instanceIdPrefix))
      .map((s) => ({ status: s, executions: engine.executions(s.instanceId) })),
  );
}

/** The orchestrator handler the entry point registered under `name`. */
export function orchestratorOf(registrations: readonly Registration[], name: string): OrchestratorHandler {
  const handler = byTrigger(registrations, 'orchestrationTrigger').get(name);
  if (!handler) throw new Error(`No orchestrator '${name}' registered.`);
  return handler;
}
