/**
 * The durable engine's history: Durable Task history events as durable-functions reads them, the in-memory
 * instance they belong to, and how both travel to and from JSON (the store).
 */
import type functions from '@azure/functions';
import { randomUUID } from 'node:crypto';

/** The handler `df.app.orchestration` registers: the library's orchestrator listener. */
export type OrchestratorHandler = (trigger: unknown, context: unknown) => Promise<unknown>;
/** The handler `df.app.activity` registers. */
export type ActivityHandler = (
  input: unknown,
  context: InstanceType<typeof functions.InvocationContext>,
) => unknown;

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated';

export const TERMINAL: ReadonlySet<RuntimeStatus> = new Set(['Completed', 'Failed', 'Terminated']);

/** History event as the Durable Task protocol names its fields (durable-functions reads these names). */
export interface HistoryEvent {
  EventType: number;
  EventId: number;
  IsPlayed: boolean;
  Timestamp: Date;
  [field: string]: unknown;
}

/** Durable Task history event types (the subset this engine writes). */
export const EventType = {
  ExecutionStarted: 0,
  ExecutionTerminated: 3,
  TaskScheduled: 4,
  TaskCompleted: 5,
  TaskFailed: 6,
  SubOrchestrationInstanceCreated: 7,
  SubOrchestrationInstanceCompleted: 8,
  SubOrchestrationInstanceFailed: 9,
  TimerCreated: 10,
  TimerFired: 11,
  OrchestratorStarted: 12,
  OrchestratorCompleted: 13,
  EventRaised: 15,
} as const;

/** A history event stamped `at` (EventId -1 for events that answer a scheduled task by TaskScheduledId). */
export function historyEvent(
  type: number,
  eventId: number,
  fields: Record<string, unknown>,
  at: Date,
): HistoryEvent {
  return { EventType: type, EventId: eventId, IsPlayed: false, Timestamp: at, ...fields };
}

// durable-functions JSON-encodes string inputs before handing them over; objects travel as they are.
export const decode = (value: unknown): unknown =>
  typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
export const encode = (value: unknown): string => JSON.stringify(value ?? null);

/** The Functions host's RpcException type, as the extension's error converter names it in `Details`. */
const RPC_EXCEPTION = 'Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException';

/**
 * The failure fields of TaskFailed / SubOrchestrationInstanceFailed as the Durable extension gives them to Node
 * orchestrators (durable-js then throws `Error("<Reason> \n <Details>")` into the orchestrator):
 * - an activity: Reason `Activity function '<name>' failed: <message>` (TaskActivityShim), where <message> is the
 *   host's RpcException message for a worker failure, `Result: Failure\nException: <thrown message>\nStack:
 *   <stack>`; Details the exception serialized by the extension's error converter (JSON, `$type` first);
 * - an orchestrator (seen by its parent): Reason `Orchestrator function '<name>' failed: <error>`, Details
 *   `Message: <error>, StackTrace: <host stack>` (OutOfProcOrchestrationShim), <error> being the orchestrator
 *   state's `error` (the message durable-js caught).
 * Structured FailureDetails are not sent (only with an exception-properties provider, which the app does not set).
 */
export function failure(
  kind: 'Activity' | 'Orchestrator',
  name: string,
  error: unknown,
): Record<string, unknown> {
  if (kind === 'Orchestrator') {
    const reason = orchestratorFailed(name, error);
    const message = reason.slice(`Orchestrator function '${name}' failed: `.length);
    return { Reason: reason, Details: `Message: ${message}, StackTrace: ` };
  }
  const e = error instanceof Error ? error : new Error(String(error));
  const hostMessage = `Result: Failure\nException: ${e.message}\nStack: ${e.stack ?? ''}`;
  const details = JSON.stringify({
    $type: `${RPC_EXCEPTION}, Microsoft.Azure.WebJobs.Script`,
    ClassName: RPC_EXCEPTION,
    Message: hostMessage,
    Data: null,
    InnerException: null,
    HResult: -2146233088,
  });
  return { Reason: `Activity function '${name}' failed: ${hostMessage}`, Details: details };
}

/**
 * A failed orchestration's output as the extension records it (OutOfProcOrchestrationShim): `Orchestrator
 * function '<name>' failed: <error>`; an output that already says so is kept.
 */
export function orchestratorFailed(name: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const prefix = `Orchestrator function '${name}' failed: `;
  return message.startsWith(prefix) ? message : `${prefix}${message}`;
}

/** History events come back from JSON with ISO strings where the orchestrator expects Dates. */
export function reviveEvent(event: HistoryEvent): HistoryEvent {
  const revived: HistoryEvent = { ...event, Timestamp: new Date(event.Timestamp) };
  if (typeof event.FireAt === 'string') revived.FireAt = new Date(event.FireAt);
  return revived;
}

/** One orchestrator run over a history prefix and what it answered: what a determinism check replays. */
export interface Episode {
  historyLength: number;
  actions: string;
  /** The replay schema the orchestrator was given. */
  replaySchema?: 'V1' | 'latest';
}

/** One execution of an instance (continue-as-new starts the next one). */
export interface Execution {
  input: unknown;
  history: HistoryEvent[];
  episodes: Episode[];
}

export interface InstanceStatus {
  name: string;
  instanceId: string;
  runtimeStatus: RuntimeStatus;
  input: unknown;
  output: unknown;
  customStatus: unknown;
  createdTime: Date;
  lastUpdatedTime: Date;
}

export interface RetryOptions {
  firstRetryIntervalInMilliseconds: number;
  maxNumberOfAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMilliseconds?: number;
}

export interface Retry {
  name: string;
  input: unknown;
  options: RetryOptions;
  attempt: number;
}

/**
 * Protocol bookkeeping the orchestrator does while processing an event: a retry's back-off timer or next attempt,
 * or (a segment of a long timer fired) the long timer's next segment, tracked under the next sequence number.
 */
export type AfterProcessing =
  | { kind: 'retry-timer' | 'retry-attempt'; retry: Retry }
  | { kind: 'timer-segment'; finalFireAt: string; actionIndex?: number };

export interface Inbound {
  event: HistoryEvent;
  after?: AfterProcessing;
}

/** An activity started and not yet settled (re-run after a restart: activities are at-least-once). */
export interface RunningActivity {
  name: string;
  input: unknown;
  retry?: Retry;
}

/** What survives a restart of the engine: everything about an instance except its waiters. */
export interface InstanceSnapshot {
  instanceId: string;
  name: string;
  input: unknown;
  /**
   * The task of the parent that started this sub-orchestration, and the parent's execution it belongs to
   * (`executionId`, absent in snapshots written before it was recorded).
   */
  parent?: { instanceId: string; taskId: number; executionId?: string };
  /** Unique per execution (a new one per start and per continue-as-new), as Durable Task's ExecutionId. */
  executionId?: string;
  /**
   * The replay schema the current execution's history was recorded under (its task numbering depends on it);
   * absent in snapshots written before the engine spoke more than V1.
   */
  replaySchema?: 'V1' | 'latest';
  status: RuntimeStatus;
  output: unknown;
  customStatus: unknown;
  createdTime: string;
  lastUpdatedTime: string;
  generation: number;
  history: HistoryEvent[];
  inbox: Inbound[];
  needsFirstEpisode: boolean;
  seenActions: number;
  nextId: number;
  running: [number, RunningActivity][];
  timers: { timerId: number; fireAt: string; actionIndex?: number; retry?: Retry; finalFireAt?: string }[];
}

/** An instance in memory: its snapshot with live dates, replies for determinism checks, and its waiters. */
export interface Instance extends Omit<
  InstanceSnapshot,
  'createdTime' | 'lastUpdatedTime' | 'running' | 'timers' | 'executionId'
> {
  executionId: string;
  createdTime: Date;
  lastUpdatedTime: Date;
  episodes: Episode[];
  executions: Execution[];
  waiters: (() => void)[];
  running: Map<number, RunningActivity>;
}

/** A new instance, Pending, that has not run its first episode. */
export function newInstance(
  name: string,
  instanceId: string,
  input: unknown,
  parent: Instance['parent'],
  now: Date,
): Instance {
  return {
    instanceId,
    name,
    input,
    ...(parent ? { parent } : {}),
    executionId: randomUUID(),
    status: 'Pending',
    output: undefined,
    customStatus: undefined,
    createdTime: now,
    lastUpdatedTime: now,
    generation: 0,
    history: [],
    inbox: [],
    needsFirstEpisode: true,
    seenActions: 0,
    nextId: 0,
    episodes: [],
    executions: [],
    waiters: [],
    running: new Map(),
  };
}

/** An instance as a store kept it (its timers and running activities are the engine's to restart). */
export function instanceFromSnapshot(snap: InstanceSnapshot): Instance {
  const { createdTime, lastUpdatedTime, history, inbox, running: _running, timers: _timers, ...kept } = snap;
  return {
    ...kept,
    executionId: snap.executionId ?? randomUUID(),
    createdTime: new Date(createdTime),
    lastUpdatedTime: new Date(lastUpdatedTime),
    history: history.map(reviveEvent),
    inbox: inbox.map((i) => ({ ...i, event: reviveEvent(i.event) })),
    episodes: [],
    executions: [],
    waiters: [],
    running: new Map(),
  };
}

/** The public status of an instance. */
export function statusOf(i: Instance): InstanceStatus {
  return {
    name: i.name,
    instanceId: i.instanceId,
    runtimeStatus: i.status,
    input: i.input,
    output: i.output,
    customStatus: i.customStatus,
    createdTime: i.createdTime,
    lastUpdatedTime: i.lastUpdatedTime,
  };
}

/**
 * Continue-as-new: the instance starts its next execution with `input`. Events raised but not yet processed are
 * dropped, as the Durable extension does (`continueAsNew(input, preserveUnprocessedEvents = false)`; durable-js
 * has no way to ask otherwise): a workflow must not rely on an event sent while it continues as new.
 */
export function startNextExecution(instance: Instance, input: unknown, now: Date): void {
  instance.running.clear();
  instance.executions.push({ input: instance.input, history: instance.history, episodes: instance.episodes });
  instance.generation++;
  instance.input = input;
  instance.history = [];
  instance.episodes = [];
  instance.seenActions = 0;
  instance.nextId = 0;
  instance.needsFirstEpisode = true;
  instance.inbox = [];
  instance.lastUpdatedTime = now;
}

/** Ends the instance's execution with a terminal status; its pending work is abandoned. */
export function markFinished(instance: Instance, status: RuntimeStatus, output: unknown, now: Date): void {
  instance.running.clear();
  instance.status = status;
  instance.output = output;
  instance.generation++;
  instance.inbox = [];
  instance.lastUpdatedTime = now;
}

/**
 * Whether `child` is the sub-orchestration that task `taskId` of the parent's current execution started (a
 * link without an execution id, from an older snapshot, never matches: it may be an earlier execution's).
 */
export function isChildOf(child: Instance, parent: Instance, taskId: number): boolean {
  const link = child.parent;
  return (
    link?.instanceId === parent.instanceId &&
    link.taskId === taskId &&
    link.executionId !== undefined &&
    link.executionId === parent.executionId
  );
}

/** Whether the parent's current execution started `childId` as task `taskId` and has no outcome for it yet. */
export function awaits(parent: Instance, taskId: number, childId: string): boolean {
  if (TERMINAL.has(parent.status)) return false;
  return awaitedChildren(parent).some((a) => a.taskId === taskId && a.instanceId === childId);
}

/** A sub-orchestration the instance's current execution started and has not heard back from yet. */
export interface AwaitedChild {
  taskId: number;
  instanceId: string;
  name: string;
  input: unknown;
}

/** The sub-orchestrations the current execution started whose outcome is neither in its history nor its inbox. */
export function awaitedChildren(instance: Instance): AwaitedChild[] {
  const outcome = (e: HistoryEvent) =>
    e.EventType === EventType.SubOrchestrationInstanceCompleted ||
    e.EventType === EventType.SubOrchestrationInstanceFailed;
  const answered = new Set(
    [...instance.history, ...instance.inbox.map((i) => i.event)]
      .filter(outcome)
      .map((e) => e.TaskScheduledId as number),
  );
  return instance.history
    .filter((e) => e.EventType === EventType.SubOrchestrationInstanceCreated && !answered.has(e.EventId))
    .map((e) => ({
      taskId: e.EventId,
      instanceId: String(e.InstanceId),
      name: String(e.Name),
      input: decode(e.Input),
    }));
}

/** What a finished sub-orchestration tells its parent's task `taskId`. */
export function subOrchestrationOutcome(
  child: Pick<Instance, 'instanceId' | 'name' | 'status' | 'output'>,
  taskId: number,
  now: Date,
): HistoryEvent {
  if (child.status === 'Completed') {
    const fields = { TaskScheduledId: taskId, Result: encode(child.output) };
    return historyEvent(EventType.SubOrchestrationInstanceCompleted, -1, fields, now);
  }
  const fields = {
    TaskScheduledId: taskId,
    ...(child.status === 'Failed'
      ? failure('Orchestrator', child.name, child.output)
      : {
          Reason: `Sub-orchestration '${child.instanceId}' terminated: ${String(child.output)}`,
          Details: '',
        }),
  };
  return historyEvent(EventType.SubOrchestrationInstanceFailed, -1, fields, now);
}
