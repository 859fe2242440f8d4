/**
 * The durable engine's side of the replay protocol: running an orchestrator over its history (what
 * durable-functions' listener answers) and the actions it answers with.
 */
import { createRequire } from 'node:module';
import { DummyOrchestrationContext } from 'durable-functions';
import functions from '@azure/functions';
import {
  EventType,
  decode,
  encode,
  type ActivityHandler,
  type HistoryEvent,
  type Instance,
  type OrchestratorHandler,
  type RetryOptions,
  type RunningActivity,
} from './durable-history.js';
import {
  LONG_RUNNING_TIMER_INTERVAL_DURATION,
  MAXIMUM_SHORT_TIMER_DURATION,
  nextTimerSegment,
  type PendingTimer,
} from './durable-timers.js';
import { formatLogArgs } from './log-format.js';

/** Action types of the orchestrator's replies (durable-functions `ActionType`). */
export const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
  WhenAny: 11,
  WhenAll: 12,
} as const;

// durable-functions' replay schemas (its `ReplaySchema` enum, outside the package index).
const replaySchemas = createRequire(import.meta.url)(
  'durable-functions/lib/src/orchestrations/ReplaySchema.js',
) as { ReplaySchema: { V1: number; V2: number; V3: number }; LatestReplaySchema: number };

/**
 * Which out-of-proc replay schema the engine announces: `latest` (default) is the newest durable-functions
 * supports, as the Durable extension in Azure announces a schema newer than V1 (compound WhenAll/WhenAny
 * actions; from V3, long timers in segments); `V1` is the original protocol (flat actions, one timer per wait).
 */
export type ReplaySchemaName = 'V1' | 'latest';
export const REPLAY_SCHEMAS: readonly ReplaySchemaName[] = ['V1', 'latest'];

/** The schema number a name stands for. */
export function replaySchemaVersion(name: ReplaySchemaName): number {
  return name === 'V1' ? replaySchemas.ReplaySchema.V1 : replaySchemas.LatestReplaySchema;
}

/** Whether a schema splits long timers into segments (V3 and later). */
export const segmentsLongTimers = (name: ReplaySchemaName): boolean =>
  replaySchemaVersion(name) >= replaySchemas.ReplaySchema.V3;

/**
 * The orchestration trigger as the extension serializes it for out-of-proc workers
 * (OrchestrationTriggerAttributeBindingProvider): `upperSchemaVersion` stays at most V2 for old SDKs and
 * `upperSchemaVersionNew` carries the newer schema; durable-functions reads the latter first.
 */
export function orchestrationTrigger(
  instance: Pick<Instance, 'history' | 'input' | 'instanceId' | 'parent'>,
  schema: ReplaySchemaName,
  isReplaying = false,
): Record<string, unknown> {
  const version = replaySchemaVersion(schema);
  return {
    history: instance.history,
    input: instance.input,
    instanceId: instance.instanceId,
    isReplaying,
    parentInstanceId: instance.parent?.instanceId,
    upperSchemaVersion: Math.min(version, replaySchemas.ReplaySchema.V2),
    ...(version > replaySchemas.ReplaySchema.V2 ? { upperSchemaVersionNew: version } : {}),
    maximumShortTimerDuration: MAXIMUM_SHORT_TIMER_DURATION,
    longRunningTimerIntervalDuration: LONG_RUNNING_TIMER_INTERVAL_DURATION,
    defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
  };
}

/**
 * The orchestrator's actions in sequence-number order: a compound WhenAll/WhenAny action (schema V2 and later)
 * stands for its inner actions, depth first, as the orchestrator numbers the tasks (and as V1 lists them).
 */
export function flattenActions(actions: readonly (readonly Action[])[]): Action[] {
  const flat: Action[] = [];
  const visit = (action: Action): void => {
    if (action.actionType === ActionType.WhenAll || action.actionType === ActionType.WhenAny) {
      for (const inner of action.compoundActions ?? []) visit(inner);
    } else {
      flat.push(action);
    }
  };
  for (const group of actions) for (const action of group) visit(action);
  return flat;
}

export interface Action {
  actionType: number;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  fireAt?: Date | string;
  isCanceled?: boolean;
  retryOptions?: RetryOptions;
  /** The actions a WhenAll/WhenAny action stands for. */
  compoundActions?: Action[];
}

export interface OrchestratorState {
  isDone: boolean;
  actions: Action[][];
  output?: unknown;
  error?: string;
  customStatus?: unknown;
}

// @azure/functions is CommonJS: take the class from the default export (plain Node sees no named exports).
const { InvocationContext } = functions;

const OUT_OF_PROC_DATA = '\n\n$OutOfProcData$:';

/** Runs the orchestrator over the instance's history: its state (actions, output), or why it failed. */
export async function invokeOrchestrator(
  handler: OrchestratorHandler | undefined,
  instance: Instance,
  log: ((message: string) => void) | undefined,
  schema: ReplaySchemaName = 'latest',
): Promise<{ state?: OrchestratorState; error?: string }> {
  if (!handler) return { error: `No orchestrator named '${instance.name}'.` };
  const trigger = orchestrationTrigger(instance, schema);
  const context = new DummyOrchestrationContext(
    instance.name,
    `${instance.instanceId}:${instance.history.length}`,
    (_level, ...args) => {
      log?.(formatLogArgs(args));
    },
  );
  try {
    return { state: (await handler(trigger, context)) as OrchestratorState };
  } catch (caught) {
    const message = caught instanceof Error ? caught.message : String(caught);
    const at = message.indexOf(OUT_OF_PROC_DATA);
    if (at < 0) return { error: message };
    // The library puts the orchestrator's state (with the real error) after a marker in the message.
    const state = JSON.parse(message.slice(at + OUT_OF_PROC_DATA.length)) as OrchestratorState;
    return { state, error: state.error ?? 'The orchestrator failed.' };
  }
}

/** What applying an action may do to the engine. */
export interface ActionEffects {
  hasActivity(name: string): boolean;
  scheduleActivity(taskId: number, activity: RunningActivity): void;
  /** Starts a sub-orchestration (throws when the id is running or the orchestrator unknown). */
  startChild(name: string, childId: string, input: unknown, taskId: number): void;
  addTimer(timer: PendingTimer): void;
  event(type: number, eventId: number, fields: Record<string, unknown>): HistoryEvent;
  /** The orchestrator's current time in this episode (its OrchestratorStarted timestamp). */
  episodeTime: Date;
  /** Whether long timers are split into segments (replay schema V3 and later). */
  longTimers: boolean;
}

/** Applies one new action of the instance; returns a message when the engine cannot honour it. */
export function applyAction(
  instance: Instance,
  action: Action,
  index: number,
  effects: ActionEffects,
): string | undefined {
  switch (action.actionType) {
    case ActionType.CallActivity:
    case ActionType.CallActivityWithRetry: {
      const name = action.functionName ?? '';
      if (!effects.hasActivity(name)) return `No activity named '${name}'.`;
      const retry = action.retryOptions
        ? { name, input: action.input, options: action.retryOptions, attempt: 1 }
        : undefined;
      effects.scheduleActivity(instance.nextId++, { name, input: action.input, ...(retry ? { retry } : {}) });
      return undefined;
    }
    case ActionType.CallSubOrchestrator: {
      const taskId = instance.nextId++;
      const name = action.functionName ?? '';
      const childId = action.instanceId ?? `${instance.instanceId}:${taskId}`;
      const fields = { Name: name, InstanceId: childId, Input: encode(action.input) };
      instance.history.push(effects.event(EventType.SubOrchestrationInstanceCreated, taskId, fields));
      try {
        effects.startChild(name, childId, action.input, taskId);
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
      return undefined;
    }
    case ActionType.CreateTimer: {
      const timerId = instance.nextId++;
      const finalFireAt = new Date(action.fireAt ?? 0);
      // A long timer starts with its first segment; the segment's firing schedules the next (see the scheduler).
      const fireAt = nextTimerSegment(effects.episodeTime, finalFireAt, effects.longTimers);
      instance.history.push(effects.event(EventType.TimerCreated, timerId, { FireAt: fireAt }));
      effects.addTimer({
        instance,
        generation: instance.generation,
        timerId,
        fireAt,
        actionIndex: index,
        ...(fireAt.getTime() === finalFireAt.getTime() ? {} : { finalFireAt }),
      });
      return undefined;
    }
    case ActionType.WaitForExternalEvent:
    case ActionType.ContinueAsNew:
      // Events are matched by name; continue-as-new is applied once the episode is done.
      return undefined;
    default:
      return `Action type ${action.actionType} is not supported by the local durable engine.`;
  }
}

/** Runs one activity invocation with its own invocation context. */
export async function runActivity(
  handler: ActivityHandler,
  name: string,
  invocationId: string,
  input: unknown,
  log: ((message: string) => void) | undefined,
): Promise<unknown> {
  const context = new InvocationContext({
    functionName: name,
    invocationId,
    logHandler: (_level, ...args) => {
      log?.(formatLogArgs(args));
    },
  });
  return await handler(decode(input), context);
}
