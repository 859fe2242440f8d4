/**
 * A local Durable Functions engine. It runs orchestrator functions through durable-functions' own replay
 * protocol (history in, actions out, as the Durable Task extension drives them in Azure) and applies the
 * actions: activities (with retry), durable timers, sub-orchestrations, external events and continue-as-new.
 * The tests drive every workflow through it, and the embedded local runtime will serve it.
 *
 * Time is either real (timers wait) or virtual: a virtual clock jumps to the next timer as soon as nothing
 * else can run, so an orchestration that sleeps for hours finishes in milliseconds with the same history.
 */
import functions from '@azure/functions';
import { DummyOrchestrationContext } from 'durable-functions';
import pLimit from 'p-limit';
import { formatLogArgs } from './log-format.js';

// @azure/functions is CommonJS: take the class from the default export (plain Node sees no named exports).
const { InvocationContext } = functions;

/** The handler `df.app.orchestration` registers: the library's orchestrator listener. */
export type OrchestratorHandler = (trigger: unknown, context: unknown) => Promise<unknown>;
/** The handler `df.app.activity` registers. */
export type ActivityHandler = (input: unknown, context: InstanceType<typeof InvocationContext>) => unknown;

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated';

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

/** Action types of the orchestrator's replies (durable-functions `ActionType`). */
const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
} as const;

interface Action {
  actionType: number;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  fireAt?: Date | string;
  isCanceled?: boolean;
  retryOptions?: RetryOptions;
}

interface RetryOptions {
  firstRetryIntervalInMilliseconds: number;
  maxNumberOfAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMilliseconds?: number;
}

interface OrchestratorState {
  isDone: boolean;
  actions: Action[][];
  output?: unknown;
  error?: string;
  customStatus?: unknown;
}

/** One orchestrator run over a history prefix and what it answered: what a determinism check replays. */
export interface Episode {
  historyLength: number;
  actions: string;
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

interface Retry {
  name: string;
  input: unknown;
  options: RetryOptions;
  attempt: number;
}

/** Protocol bookkeeping the orchestrator does while processing an event: a retry's back-off timer or next attempt. */
type AfterProcessing = { kind: 'retry-timer' | 'retry-attempt'; retry: Retry };

interface Inbound {
  event: HistoryEvent;
  after?: AfterProcessing;
}

/** An activity started and not yet settled (re-run after a restart: activities are at-least-once). */
interface RunningActivity {
  name: string;
  input: unknown;
  retry?: Retry;
}

/** What survives a restart of the engine: everything about an instance except its waiters. */
export interface InstanceSnapshot {
  instanceId: string;
  name: string;
  input: unknown;
  parent?: { instanceId: string; taskId: number };
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
  timers: { timerId: number; fireAt: string; actionIndex?: number; retry?: Retry }[];
}

/** A start whose instance could not be saved: nothing was started (the caller answers 503, not 202). */
export class InstanceNotSavedError extends Error {
  constructor(instanceId: string, cause: unknown) {
    super(`Instance '${instanceId}' could not be saved: ${String(cause)}`, { cause });
  }
}

/** Where instances are kept between runs (Azurite Tables in the embedded runtime). */
export interface InstanceStore {
  save(snapshot: InstanceSnapshot): Promise<void>;
  loadAll(): Promise<InstanceSnapshot[]>;
  delete(instanceId: string): Promise<void>;
}

/** An instance in memory: its snapshot with live dates, replies for determinism checks, and its waiters. */
interface Instance extends Omit<InstanceSnapshot, 'createdTime' | 'lastUpdatedTime' | 'running' | 'timers'> {
  createdTime: Date;
  lastUpdatedTime: Date;
  episodes: Episode[];
  executions: Execution[];
  waiters: (() => void)[];
  running: Map<number, RunningActivity>;
}

interface PendingTimer {
  instance: Instance;
  generation: number;
  timerId: number;
  fireAt: Date;
  /** Index of the CreateTimer action (for cancellation); absent for retry back-off timers. */
  actionIndex?: number;
  retry?: Retry;
}

export interface DurableEngineOptions {
  orchestrators: ReadonlyMap<string, OrchestratorHandler>;
  activities: ReadonlyMap<string, ActivityHandler>;
  /**
   * `virtual` jumps the clock to the next timer when nothing else can run; `manual` fires timers only when
   * `advance()` moves the clock past them; `real` waits for them.
   */
  clock: 'virtual' | 'manual' | 'real';
  /** Virtual clock start (default: now). */
  startTime?: Date;
  /** At most this many activities run at once (host.json `maxConcurrentActivityFunctions`). */
  maxConcurrentActivities?: number;
  log?: (message: string) => void;
  /** Keeps instances across restarts; without it they live in memory only. */
  store?: InstanceStore;
}

const OUT_OF_PROC_DATA = '\n\n$OutOfProcData$:';
const TERMINAL: ReadonlySet<RuntimeStatus> = new Set(['Completed', 'Failed', 'Terminated']);

// durable-functions JSON-encodes string inputs before handing them over; objects travel as they are.
const decode = (value: unknown): unknown =>
  typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
const encode = (value: unknown): string => JSON.stringify(value ?? null);

export class DurableEngine {
  private readonly instances = new Map<string, Instance>();
  private timers: PendingTimer[] = [];
  private virtualNow: number;
  private running = 0;
  private readonly limit: ReturnType<typeof pLimit>;
  private pumping = false;
  private poke: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];
  private flushing: Promise<void> = Promise.resolve();
  /** Set by saveAll: the store is about to stop, nothing more is written to it. */
  private closed = false;
  private readonly dirty = new Set<Instance>();
  private saveQueue: Promise<void> = Promise.resolve();

  constructor(private readonly options: DurableEngineOptions) {
    this.virtualNow = (options.startTime ?? new Date()).getTime();
    this.limit = pLimit(options.maxConcurrentActivities ?? 10);
  }

  /** The engine's current time (virtual or real). */
  now(): Date {
    return this.options.clock === 'real' ? new Date() : new Date(this.virtualNow);
  }

  /** Moves a manual clock forward and fires the timers that are due. */
  advance(milliseconds: number): void {
    this.virtualNow += milliseconds;
    this.wake();
  }

  /** Starts an orchestration; fails when an instance with this id is still running. */
  start(name: string, instanceId: string, input?: unknown): void {
    this.create(name, instanceId, input, undefined);
    this.wake();
  }

  /**
   * Starts an orchestration and resolves once the store holds it, so that a 202 answered afterwards survives a
   * crash (as the Durable Task extension writes the instance before its start call returns). When the save
   * fails the instance is forgotten and the error thrown: nothing was acknowledged.
   */
  async startDurably(name: string, instanceId: string, input?: unknown): Promise<void> {
    const instance = this.create(name, instanceId, input, undefined);
    if (this.options.store) {
      this.dirty.delete(instance);
      try {
        await this.saveNow(instance);
      } catch (error) {
        if (this.instances.get(instanceId) === instance && instance.status === 'Pending') {
          this.instances.delete(instanceId);
        }
        throw new InstanceNotSavedError(instanceId, error);
      }
    }
    this.wake();
  }

  /** Delivers an external event (`context.df.waitForExternalEvent(name)`). */
  raiseEvent(instanceId: string, name: string, data?: unknown): void {
    const instance = this.running_(instanceId);
    this.deliver(instance, {
      event: this.event(EventType.EventRaised, -1, { Name: name, Input: encode(data) }),
    });
  }

  /** Ends the instance at once, as Durable's terminate does; its pending work is abandoned. */
  terminate(instanceId: string, reason: string): void {
    const instance = this.running_(instanceId);
    instance.history.push(this.event(EventType.ExecutionTerminated, -1, { Input: encode(reason) }));
    this.finish(instance, 'Terminated', reason);
    this.wake();
  }

  /** Forgets a finished instance (purge); false when there was none. */
  purge(instanceId: string): boolean {
    const instance = this.instances.get(instanceId);
    if (!instance || !TERMINAL.has(instance.status)) return false;
    this.dirty.delete(instance);
    void this.options.store?.delete(instanceId).catch((error: unknown) => {
      this.options.log?.(`durable store: purge of ${instanceId} failed: ${String(error)}`);
    });
    return this.instances.delete(instanceId);
  }

  status(instanceId: string): InstanceStatus | undefined {
    const i = this.instances.get(instanceId);
    if (!i) return undefined;
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

  list(): InstanceStatus[] {
    return [...this.instances.keys()].flatMap((id) => this.status(id) ?? []);
  }

  /** Every execution of the instance (one per continue-as-new), with its history and replies. */
  executions(instanceId: string): Execution[] {
    const i = this.instances.get(instanceId);
    if (!i) return [];
    return [...i.executions, { input: i.input, history: i.history, episodes: i.episodes }];
  }

  /** Resolves when the instance reaches Completed, Failed or Terminated. */
  async whenDone(instanceId: string): Promise<InstanceStatus> {
    const i = this.instances.get(instanceId);
    if (!i) throw new Error(`No instance '${instanceId}'.`);
    if (!TERMINAL.has(i.status)) await new Promise<void>((resolve) => i.waiters.push(resolve));
    return this.status(instanceId) as InstanceStatus;
  }

  /** Resolves when nothing can run any more (everything finished, or waiting for an external event). */
  async idle(): Promise<void> {
    if (!this.pumping) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Loads the instances a store kept and resumes them: pending timers are set again, activities that were
   * running are run again (at-least-once, as after a host crash), instances with pending events replay.
   */
  async restore(): Promise<number> {
    const snapshots = (await this.options.store?.loadAll()) ?? [];
    for (const snap of snapshots) {
      const instance: Instance = {
        instanceId: snap.instanceId,
        name: snap.name,
        input: snap.input,
        ...(snap.parent ? { parent: snap.parent } : {}),
        status: snap.status,
        output: snap.output,
        customStatus: snap.customStatus,
        createdTime: new Date(snap.createdTime),
        lastUpdatedTime: new Date(snap.lastUpdatedTime),
        generation: snap.generation,
        history: snap.history.map(reviveEvent),
        inbox: snap.inbox.map((i) => ({ ...i, event: reviveEvent(i.event) })),
        needsFirstEpisode: snap.needsFirstEpisode,
        seenActions: snap.seenActions,
        nextId: snap.nextId,
        episodes: [],
        executions: [],
        waiters: [],
        running: new Map(),
      };
      this.instances.set(instance.instanceId, instance);
      for (const t of snap.timers) {
        this.timers.push({
          instance,
          generation: instance.generation,
          timerId: t.timerId,
          fireAt: new Date(t.fireAt),
          ...(t.actionIndex === undefined ? {} : { actionIndex: t.actionIndex }),
          ...(t.retry ? { retry: t.retry } : {}),
        });
      }
      if (!TERMINAL.has(instance.status)) {
        for (const [taskId, activity] of snap.running) {
          this.startActivity(instance, taskId, activity.name, activity.input, activity.retry);
        }
      }
    }
    this.wake();
    return snapshots.length;
  }

  /** Saves one instance after every save already queued: saves of one instance reach the store in order. */
  private saveNow(instance: Instance): Promise<void> {
    const store = this.options.store;
    if (!store) return Promise.resolve();
    // The snapshot is taken when its turn comes, so it is never older than one saved before it.
    const saved = this.saveQueue.then(() => store.save(this.snapshot(instance)));
    this.saveQueue = saved.catch(() => undefined);
    return saved;
  }

  /**
   * Saves what is not saved yet and waits for a save in progress; afterwards nothing more is saved (the last
   * step of a shutdown, before the storage goes away). Resolves with how many instances this call saved.
   */
  async saveAll(): Promise<number> {
    const count = this.dirty.size;
    await this.flush();
    this.closed = true;
    return count;
  }

  /** One flush at a time: a shutdown's saveAll waits for the pump's save in progress. */
  private flush(): Promise<void> {
    const next = this.flushing.then(() => this.flushDirty());
    this.flushing = next;
    return next;
  }

  private async flushDirty(): Promise<void> {
    const store = this.options.store;
    if (!store || this.closed || this.dirty.size === 0) return;
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const instance of batch) {
      try {
        await this.saveNow(instance);
      } catch (error) {
        // Saved again on its next change; retrying at once would spin while the store is down.
        this.options.log?.(`durable store: saving ${instance.instanceId} failed: ${String(error)}`);
      }
    }
  }

  private snapshot(i: Instance): InstanceSnapshot {
    return {
      instanceId: i.instanceId,
      name: i.name,
      input: i.input,
      ...(i.parent ? { parent: i.parent } : {}),
      status: i.status,
      output: i.output,
      customStatus: i.customStatus,
      createdTime: i.createdTime.toISOString(),
      lastUpdatedTime: i.lastUpdatedTime.toISOString(),
      generation: i.generation,
      history: i.history,
      inbox: i.inbox,
      needsFirstEpisode: i.needsFirstEpisode,
      seenActions: i.seenActions,
      nextId: i.nextId,
      running: [...i.running.entries()],
      timers: this.timers
        .filter((t) => t.instance === i && t.generation === i.generation)
        .map((t) => ({
          timerId: t.timerId,
          fireAt: t.fireAt.toISOString(),
          ...(t.actionIndex === undefined ? {} : { actionIndex: t.actionIndex }),
          ...(t.retry ? { retry: t.retry } : {}),
        })),
    };
  }

  private running_(instanceId: string): Instance {
    const instance = this.instances.get(instanceId);
    if (!instance || TERMINAL.has(instance.status))
      throw new Error(`Instance '${instanceId}' is not running.`);
    return instance;
  }

  private create(name: string, instanceId: string, input: unknown, parent: Instance['parent']): Instance {
    const existing = this.instances.get(instanceId);
    if (existing && !TERMINAL.has(existing.status)) {
      throw new Error(`An instance with id '${instanceId}' is already running.`);
    }
    if (!this.options.orchestrators.has(name)) throw new Error(`No orchestrator named '${name}'.`);
    const now = this.now();
    const instance: Instance = {
      instanceId,
      name,
      input,
      ...(parent ? { parent } : {}),
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
    this.instances.set(instanceId, instance);
    this.dirty.add(instance);
    return instance;
  }

  private event(type: number, eventId: number, fields: Record<string, unknown>): HistoryEvent {
    return { EventType: type, EventId: eventId, IsPlayed: false, Timestamp: this.now(), ...fields };
  }

  private deliver(instance: Instance, inbound: Inbound): void {
    instance.inbox.push(inbound);
    this.dirty.add(instance);
    this.wake();
  }

  private wake(): void {
    if (this.pumping) {
      const poke = this.poke;
      this.poke = undefined;
      poke?.();
      return;
    }
    this.pumping = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    for (;;) {
      const ready = this.nextReady();
      if (ready) {
        await this.episode(ready);
        this.dirty.add(ready);
        continue;
      }
      if (this.options.store && !this.closed && this.dirty.size > 0) {
        // Events may arrive while saving: look again afterwards.
        await this.flush();
        continue;
      }
      const timer = this.timers.reduce<PendingTimer | undefined>(
        (earliest, t) => (earliest === undefined || t.fireAt < earliest.fireAt ? t : earliest),
        undefined,
      );
      if (
        this.running > 0 ||
        (timer && this.options.clock === 'real' && timer.fireAt.getTime() > Date.now())
      ) {
        // Wait for an activity to finish, a new event, or (real clock) the next timer.
        let handle: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.poke = resolve;
          if (this.running === 0 && timer) {
            handle = setTimeout(resolve, Math.max(0, timer.fireAt.getTime() - Date.now()));
          }
        });
        clearTimeout(handle);
        this.poke = undefined;
        continue;
      }
      if (timer && (this.options.clock !== 'manual' || timer.fireAt.getTime() <= this.virtualNow)) {
        this.fire(timer);
        continue;
      }
      break;
    }
    this.pumping = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private nextReady(): Instance | undefined {
    for (const instance of this.instances.values()) {
      if (TERMINAL.has(instance.status)) continue;
      if (instance.needsFirstEpisode || instance.inbox.length > 0) return instance;
    }
    return undefined;
  }

  private fire(timer: PendingTimer): void {
    this.timers = this.timers.filter((t) => t !== timer);
    if (this.options.clock !== 'real') this.virtualNow = Math.max(this.virtualNow, timer.fireAt.getTime());
    const { instance, retry } = timer;
    if (timer.generation !== instance.generation || TERMINAL.has(instance.status)) return;
    const event = this.event(EventType.TimerFired, -1, { TimerId: timer.timerId, FireAt: timer.fireAt });
    // After a retry back-off, the orchestrator tracks the next attempt under the next sequence number.
    const after: AfterProcessing | undefined =
      retry && retry.attempt <= retry.options.maxNumberOfAttempts
        ? { kind: 'retry-attempt', retry }
        : undefined;
    this.deliver(instance, { event, ...(after ? { after } : {}) });
  }

  /** One orchestrator invocation: replay the history plus one new event, then apply the new actions. */
  private async episode(instance: Instance): Promise<void> {
    const first = instance.needsFirstEpisode;
    instance.needsFirstEpisode = false;
    const inbound = first ? undefined : instance.inbox.shift();
    instance.history.push(this.event(EventType.OrchestratorStarted, -1, {}));
    if (first) {
      instance.history.push(
        this.event(EventType.ExecutionStarted, -1, {
          Name: instance.name,
          Input: encode(instance.input),
          ...(instance.parent
            ? { ParentInstance: { OrchestrationInstance: { InstanceId: instance.parent.instanceId } } }
            : {}),
        }),
      );
      instance.status = 'Running';
    }
    if (inbound) instance.history.push(inbound.event);

    const historyLength = instance.history.length;
    const { state, error } = await this.invoke(instance);
    if (inbound?.after?.kind === 'retry-timer') this.scheduleRetryTimer(instance, inbound.after.retry);
    if (inbound?.after?.kind === 'retry-attempt') {
      const { retry } = inbound.after;
      this.scheduleActivity(instance, instance.nextId++, retry.name, retry.input, retry);
    }
    if (!state) {
      this.finish(instance, 'Failed', error ?? 'The orchestrator failed without an error message.');
      return;
    }
    const actions = state.actions.flat();
    instance.episodes.push({ historyLength, actions: JSON.stringify(actions) });
    instance.customStatus = state.customStatus;
    instance.lastUpdatedTime = this.now();

    // A timer the orchestrator cancelled (e.g. it lost a Task.any race) never fires.
    this.timers = this.timers.filter(
      (t) =>
        t.instance !== instance || t.actionIndex === undefined || actions[t.actionIndex]?.isCanceled !== true,
    );
    const generation = instance.generation;
    for (let index = instance.seenActions; index < actions.length; index++) {
      const action = actions[index] as Action;
      const problem = this.apply(instance, action, index);
      if (problem) {
        this.finish(instance, 'Failed', problem);
        return;
      }
      if (instance.generation !== generation) return;
    }
    instance.seenActions = actions.length;
    instance.history.push(this.event(EventType.OrchestratorCompleted, -1, {}));

    if (error !== undefined) {
      this.finish(instance, 'Failed', error);
    } else if (state.isDone) {
      const continued = actions.find((a) => a.actionType === ActionType.ContinueAsNew);
      if (continued) this.continueAsNew(instance, decode(continued.input));
      else this.finish(instance, 'Completed', state.output);
    }
  }

  private async invoke(instance: Instance): Promise<{ state?: OrchestratorState; error?: string }> {
    const handler = this.options.orchestrators.get(instance.name);
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
    const log = this.options.log;
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

  /** Applies one new action; returns a message when the engine cannot honour it. */
  private apply(instance: Instance, action: Action, index: number): string | undefined {
    switch (action.actionType) {
      case ActionType.CallActivity:
      case ActionType.CallActivityWithRetry: {
        const name = action.functionName ?? '';
        if (!this.options.activities.has(name)) return `No activity named '${name}'.`;
        const retry = action.retryOptions
          ? { name, input: action.input, options: action.retryOptions, attempt: 1 }
          : undefined;
        this.scheduleActivity(instance, instance.nextId++, name, action.input, retry);
        return undefined;
      }
      case ActionType.CallSubOrchestrator: {
        const taskId = instance.nextId++;
        const name = action.functionName ?? '';
        const childId = action.instanceId ?? `${instance.instanceId}:${taskId}`;
        instance.history.push(
          this.event(EventType.SubOrchestrationInstanceCreated, taskId, {
            Name: name,
            InstanceId: childId,
            Input: encode(action.input),
          }),
        );
        try {
          this.create(name, childId, action.input, { instanceId: instance.instanceId, taskId });
        } catch (error) {
          return error instanceof Error ? error.message : String(error);
        }
        return undefined;
      }
      case ActionType.CreateTimer: {
        const timerId = instance.nextId++;
        const fireAt = new Date(action.fireAt ?? 0);
        instance.history.push(this.event(EventType.TimerCreated, timerId, { FireAt: fireAt }));
        this.timers.push({ instance, generation: instance.generation, timerId, fireAt, actionIndex: index });
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

  private scheduleActivity(
    instance: Instance,
    taskId: number,
    name: string,
    input: unknown,
    retry?: Retry,
  ): void {
    instance.history.push(this.event(EventType.TaskScheduled, taskId, { Name: name, Input: encode(input) }));
    this.startActivity(instance, taskId, name, input, retry);
  }

  private startActivity(
    instance: Instance,
    taskId: number,
    name: string,
    input: unknown,
    retry?: Retry,
  ): void {
    instance.running.set(taskId, { name, input, ...(retry ? { retry } : {}) });
    this.dirty.add(instance);
    const generation = instance.generation;
    const handler = this.options.activities.get(name) as ActivityHandler;
    const run = async () => {
      const context = new InvocationContext({
        functionName: name,
        invocationId: `${instance.instanceId}:${taskId}`,
        logHandler: (_level, ...args) => {
          this.options.log?.(formatLogArgs(args));
        },
      });
      return await handler(decode(input), context);
    };
    this.running++;
    this.limit(run).then(
      (output) => {
        this.settle(
          instance,
          generation,
          {
            event: this.event(EventType.TaskCompleted, -1, {
              TaskScheduledId: taskId,
              Result: encode(output),
            }),
          },
          taskId,
        );
      },
      (error: unknown) => {
        const event = this.event(EventType.TaskFailed, -1, {
          TaskScheduledId: taskId,
          ...failure(error),
        });
        // The orchestrator answers a failed attempt by tracking a back-off timer under the next sequence number.
        const after: AfterProcessing | undefined = retry ? { kind: 'retry-timer', retry } : undefined;
        this.settle(instance, generation, { event, ...(after ? { after } : {}) }, taskId);
      },
    );
  }

  private scheduleRetryTimer(instance: Instance, retry: Retry): void {
    const { firstRetryIntervalInMilliseconds: first, backoffCoefficient = 1 } = retry.options;
    const cap = retry.options.maxRetryIntervalInMilliseconds ?? Number.MAX_SAFE_INTEGER;
    const delay = Math.min(cap, first * backoffCoefficient ** (retry.attempt - 1));
    const timerId = instance.nextId++;
    const fireAt = new Date(this.now().getTime() + delay);
    instance.history.push(this.event(EventType.TimerCreated, timerId, { FireAt: fireAt }));
    this.timers.push({
      instance,
      generation: instance.generation,
      timerId,
      fireAt,
      retry: { ...retry, attempt: retry.attempt + 1 },
    });
  }

  private settle(instance: Instance, generation: number, inbound: Inbound, taskId: number): void {
    this.running--;
    if (generation === instance.generation) instance.running.delete(taskId);
    if (generation === instance.generation && !TERMINAL.has(instance.status)) this.deliver(instance, inbound);
    else this.wake();
  }

  private continueAsNew(instance: Instance, input: unknown): void {
    instance.running.clear();
    instance.executions.push({
      input: instance.input,
      history: instance.history,
      episodes: instance.episodes,
    });
    instance.generation++;
    instance.input = input;
    instance.history = [];
    instance.episodes = [];
    instance.seenActions = 0;
    instance.nextId = 0;
    instance.needsFirstEpisode = true;
    // Events raised but not yet processed carry over to the new execution, as in Durable Task.
    instance.inbox = instance.inbox.filter((i) => i.event.EventType === EventType.EventRaised);
    this.timers = this.timers.filter((t) => t.instance !== instance);
    instance.lastUpdatedTime = this.now();
  }

  private finish(instance: Instance, status: RuntimeStatus, output: unknown): void {
    this.dirty.add(instance);
    instance.running.clear();
    instance.status = status;
    instance.output = output;
    instance.generation++;
    instance.inbox = [];
    instance.lastUpdatedTime = this.now();
    this.timers = this.timers.filter((t) => t.instance !== instance);
    const parent = instance.parent && this.instances.get(instance.parent.instanceId);
    if (parent && instance.parent && !TERMINAL.has(parent.status)) {
      const taskId = instance.parent.taskId;
      this.deliver(parent, {
        event:
          status === 'Completed'
            ? this.event(EventType.SubOrchestrationInstanceCompleted, -1, {
                TaskScheduledId: taskId,
                Result: encode(output),
              })
            : this.event(EventType.SubOrchestrationInstanceFailed, -1, {
                TaskScheduledId: taskId,
                ...failure(
                  new Error(
                    `Sub-orchestration '${instance.instanceId}' ${status.toLowerCase()}: ${String(output)}`,
                  ),
                ),
              }),
      });
    }
    const waiters = instance.waiters;
    instance.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * The failure fields of TaskFailed / SubOrchestrationInstanceFailed as the Functions host gives them to Node
 * orchestrators: `Reason` and `Details` only (the orchestrator sees `Error("<Reason> \n <Details>")`), no
 * structured FailureDetails.
 */
function failure(error: unknown): Record<string, unknown> {
  const e = error instanceof Error ? error : new Error(String(error));
  return { Reason: e.message, Details: e.stack ?? '' };
}

/** History events come back from JSON with ISO strings where the orchestrator expects Dates. */
function reviveEvent(event: HistoryEvent): HistoryEvent {
  const revived: HistoryEvent = { ...event, Timestamp: new Date(event.Timestamp) };
  if (typeof event.FireAt === 'string') revived.FireAt = new Date(event.FireAt);
  return revived;
}
