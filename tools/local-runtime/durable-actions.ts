/**
 * The durable engine's side of the replay protocol: running an orchestrator over its history (what
 * durable-functions' listener answers) and the actions it answers with.
 */
import { DummyOrchestrationContext } from 'durable-functions';
import type { Instance, OrchestratorHandler, RetryOptions } from './durable-history.js';
import { formatLogArgs } from './log-format.js';

/** Action types of the orchestrator's replies (durable-functions `ActionType`). */
export const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
} as const;

export interface Action {
  actionType: number;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  fireAt?: Date | string;
  isCanceled?: boolean;
  retryOptions?: RetryOptions;
}

export interface OrchestratorState {
  isDone: boolean;
  actions: Action[][];
  output?: unknown;
  error?: string;
  customStatus?: unknown;
}

const OUT_OF_PROC_DATA = '\n\n$OutOfProcData$:';

/** Runs the orchestrator over the instance's history: its state (actions, output), or why it failed. */
export async function invokeOrchestrator(
  handler: OrchestratorHandler | undefined,
  instance: Instance,
  log: ((message: string) => void) | undefined,
): Promise<{ state?: OrchestratorState; error?: string }> {
  if (!handler) return { error: `No orchestrator named '${instance.name}'.` };
  const trigger = {
    history: instance.history,
    input: instance.input,
    instanceId: instance.instanceId,
    isReplaying: false,
    parentInstanceId: instance.parent?.instanceId,
    upperSchemaVersion: 0,
    maximumShortTimerDuration: '6.00:00:00',
    longRunningTimerIntervalDuration: '3.00:00:00',
    defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
  };
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
