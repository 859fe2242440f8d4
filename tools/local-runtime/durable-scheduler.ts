/**
 * The durable engine's scheduler: instances in memory, the pump that runs whatever is ready (an episode, a due
 * timer, a save), episodes of the replay protocol, activities with bounded concurrency, and finishing an
 * instance (its parent told). DurableEngine adds the public operations on top.
 */
import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import {
  ActionType,
  applyAction,
  flattenActions,
  invokeOrchestrator,
  runActivity,
  segmentsLongTimers,
  type Action,
  type ReplaySchemaName,
} from './durable-actions.js';
import {
  EventType,
  TERMINAL,
  decode,
  encode,
  failure,
  awaits,
  historyEvent,
  isChildOf,
  markFinished,
  orchestratorFailed,
  newInstance,
  startNextExecution,
  subOrchestrationOutcome,
  type ActivityHandler,
  type AfterProcessing,
  type HistoryEvent,
  type Inbound,
  type Instance,
  type OrchestratorHandler,
  type Retry,
  type RunningActivity,
  type RuntimeStatus,
} from './durable-history.js';
import { InstanceSaver, type InstanceStore } from './durable-store.js';
import { TimerQueue, nextTimerSegment, retryDelay, type PendingTimer } from './durable-timers.js';

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
  /**
   * The replay schema announced to orchestrators: `latest` (default, as the Durable extension in Azure) or `V1`
   * (the original protocol). A store's instances must be resumed under the schema that recorded them.
   */
  replaySchema?: ReplaySchemaName;
}

/** The schema an instance's current history was recorded under (snapshots from before schemas: V1). */
export const schemaOf = (instance: Instance): ReplaySchemaName => instance.replaySchema ?? 'V1';

export class DurableScheduler {
  protected readonly instances = new Map<string, Instance>();
  protected readonly timers = new TimerQueue();
  protected readonly saver: InstanceSaver;
  protected virtualNow: number;
  protected running = 0;
  protected readonly limit: ReturnType<typeof pLimit>;
  protected pumping = false;
  protected poke: (() => void) | undefined;
  protected idleWaiters: (() => void)[] = [];
  /** Set when the host stops its triggers: no episode runs and no timer fires any more; saves go on. */
  protected dispatching = true;

  constructor(protected readonly options: DurableEngineOptions) {
    this.virtualNow = (options.startTime ?? new Date()).getTime();
    this.limit = pLimit(options.maxConcurrentActivities ?? 10);
    this.saver = new InstanceSaver(options.store, this.timers, options.log);
  }

  /** The replay schema the engine announces to orchestrators. */
  get replaySchema(): ReplaySchemaName {
    return this.options.replaySchema ?? 'latest';
  }

  /** The engine's current time (virtual or real). */
  now(): Date {
    return this.options.clock === 'real' ? new Date() : new Date(this.virtualNow);
  }

  protected running_(instanceId: string): Instance {
    const instance = this.instances.get(instanceId);
    if (!instance || TERMINAL.has(instance.status))
      throw new Error(`Instance '${instanceId}' is not running.`);
    return instance;
  }

  protected create(name: string, instanceId: string, input: unknown, parent: Instance['parent']): Instance {
    const existing = this.instances.get(instanceId);
    if (existing && !TERMINAL.has(existing.status)) {
      throw new Error(`An instance with id '${instanceId}' is already running.`);
    }
    if (!this.options.orchestrators.has(name)) throw new Error(`No orchestrator named '${name}'.`);
    const instance = newInstance(name, instanceId, input, parent, this.now());
    instance.replaySchema = this.replaySchema;
    this.instances.set(instanceId, instance);
    this.saver.changed(instance);
    return instance;
  }

  protected event(type: number, eventId: number, fields: Record<string, unknown>): HistoryEvent {
    return historyEvent(type, eventId, fields, this.now());
  }

  protected deliver(instance: Instance, inbound: Inbound): void {
    instance.inbox.push(inbound);
    this.saver.changed(instance);
    this.wake();
  }

  protected wake(): void {
    if (this.pumping) {
      const poke = this.poke;
      this.poke = undefined;
      poke?.();
      return;
    }
    this.pumping = true;
    void this.pump();
  }

  protected async pump(): Promise<void> {
    for (;;) {
      const ready = this.dispatching ? this.nextReady() : undefined;
      if (ready) {
        await this.episode(ready);
        this.saver.changed(ready);
        continue;
      }
      if (this.saver.pending) {
        // Events may arrive while saving: look again afterwards.
        await this.saver.flush();
        continue;
      }
      const timer = this.dispatching ? this.timers.earliest() : undefined;
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

  protected nextReady(): Instance | undefined {
    for (const instance of this.instances.values()) {
      if (TERMINAL.has(instance.status)) continue;
      if (instance.needsFirstEpisode || instance.inbox.length > 0) return instance;
    }
    return undefined;
  }

  protected fire(timer: PendingTimer): void {
    this.timers.remove(timer);
    if (this.options.clock !== 'real') this.virtualNow = Math.max(this.virtualNow, timer.fireAt.getTime());
    const { instance, retry } = timer;
    if (timer.generation !== instance.generation || TERMINAL.has(instance.status)) return;
    const event = this.event(EventType.TimerFired, -1, { TimerId: timer.timerId, FireAt: timer.fireAt });
    // After a retry back-off, the orchestrator tracks the next attempt under the next sequence number; after a
    // segment of a long timer, the next segment.
    const after: AfterProcessing | undefined =
      retry && retry.attempt <= retry.options.maxNumberOfAttempts
        ? { kind: 'retry-attempt', retry }
        : timer.finalFireAt
          ? {
              kind: 'timer-segment',
              finalFireAt: timer.finalFireAt.toISOString(),
              ...(timer.actionIndex === undefined ? {} : { actionIndex: timer.actionIndex }),
            }
          : undefined;
    this.deliver(instance, { event, ...(after ? { after } : {}) });
  }

  /** One orchestrator invocation: replay the history plus one new event, then apply the new actions. */
  protected async episode(instance: Instance): Promise<void> {
    const first = instance.needsFirstEpisode;
    instance.needsFirstEpisode = false;
    const inbound = first ? undefined : instance.inbox.shift();
    const started = this.event(EventType.OrchestratorStarted, -1, {});
    instance.history.push(started);
    const episodeTime = started.Timestamp;
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
    const handler = this.options.orchestrators.get(instance.name);
    const schema = schemaOf(instance);
    const { state, error } = await invokeOrchestrator(handler, instance, this.options.log, schema);
    const after = inbound?.after;
    if (after?.kind === 'retry-timer') this.scheduleRetryTimer(instance, after.retry);
    if (after?.kind === 'retry-attempt') {
      const { retry } = after;
      this.scheduleActivity(instance, instance.nextId++, { name: retry.name, input: retry.input, retry });
    }
    if (after?.kind === 'timer-segment') this.scheduleTimerSegment(instance, after, episodeTime);
    if (!state) {
      this.finish(
        instance,
        'Failed',
        orchestratorFailed(instance.name, error ?? 'The orchestrator failed without an error message.'),
      );
      return;
    }
    const actions = flattenActions(state.actions);
    // The reply as the orchestrator gave it (compound actions and all): what a determinism check compares.
    instance.episodes.push({ historyLength, actions: JSON.stringify(state.actions), replaySchema: schema });
    instance.customStatus = state.customStatus;
    instance.lastUpdatedTime = this.now();

    // A timer the orchestrator cancelled (e.g. it lost a Task.any race) never fires.
    this.timers.dropCancelled(instance, (index) => actions[index]?.isCanceled === true);
    const generation = instance.generation;
    for (let index = instance.seenActions; index < actions.length; index++) {
      const action = actions[index] as Action;
      const problem = this.apply(instance, action, index, episodeTime, schema);
      if (problem) {
        this.finish(instance, 'Failed', orchestratorFailed(instance.name, problem));
        return;
      }
      if (instance.generation !== generation) return;
    }
    instance.seenActions = actions.length;
    instance.history.push(this.event(EventType.OrchestratorCompleted, -1, {}));

    if (error !== undefined) {
      this.finish(instance, 'Failed', orchestratorFailed(instance.name, error));
    } else if (state.isDone) {
      const continued = actions.find((a) => a.actionType === ActionType.ContinueAsNew);
      if (continued) this.continueAsNew(instance, decode(continued.input));
      else this.finish(instance, 'Completed', state.output);
    }
  }

  /** Applies one new action; returns a message when the engine cannot honour it. */
  protected apply(
    instance: Instance,
    action: Action,
    index: number,
    episodeTime: Date,
    schema: ReplaySchemaName,
  ): string | undefined {
    return applyAction(instance, action, index, {
      episodeTime,
      longTimers: segmentsLongTimers(schema),
      hasActivity: (name) => this.options.activities.has(name),
      scheduleActivity: (taskId, activity) => {
        this.scheduleActivity(instance, taskId, activity);
      },
      startChild: (name, childId, input, taskId) => {
        this.startChild(instance, taskId, name, childId, input);
      },
      addTimer: (timer) => {
        this.timers.add(timer);
      },
      event: (type, eventId, fields) => this.event(type, eventId, fields),
    });
  }

  /**
   * Starts task `taskId`'s sub-orchestration. A child this very task started already (before a crash whose
   * last save held the child but not the parent's new history) is adopted, not started twice: when it has
   * finished, its outcome is delivered again, as Durable Task re-sends a message a crash lost.
   */
  protected startChild(
    parent: Instance,
    taskId: number,
    name: string,
    childId: string,
    input: unknown,
  ): void {
    const existing = this.instances.get(childId);
    if (existing && isChildOf(existing, parent, taskId)) {
      if (TERMINAL.has(existing.status)) this.deliverOutcome(parent, existing, taskId);
      return;
    }
    const link = { instanceId: parent.instanceId, taskId, executionId: parent.executionId };
    this.create(name, childId, input, link);
  }

  /**
   * Tells the parent's task `taskId` how its sub-orchestration ended, once: only while the parent's current
   * execution waits for that very child (an earlier execution's child, or an outcome already in the history or
   * inbox, is not delivered).
   */
  protected deliverOutcome(
    parent: Instance,
    child: Pick<Instance, 'instanceId' | 'name' | 'status' | 'output'>,
    taskId: number,
  ): void {
    if (!awaits(parent, taskId, child.instanceId)) return;
    this.deliver(parent, { event: subOrchestrationOutcome(child, taskId, this.now()) });
  }

  /** Records TaskScheduled and starts the activity. */
  protected scheduleActivity(instance: Instance, taskId: number, activity: RunningActivity): void {
    const fields = { Name: activity.name, Input: encode(activity.input) };
    instance.history.push(this.event(EventType.TaskScheduled, taskId, fields));
    this.startActivity(instance, taskId, activity);
  }

  /** Runs an activity (bounded concurrency); its completion or failure is delivered to the instance. */
  protected startActivity(instance: Instance, taskId: number, activity: RunningActivity): void {
    const { name, input, retry } = activity;
    instance.running.set(taskId, activity);
    this.saver.changed(instance);
    const generation = instance.generation;
    const handler = this.options.activities.get(name) as ActivityHandler;
    const invocationId = `${instance.instanceId}:${taskId}`;
    this.running++;
    this.limit(() => runActivity(handler, name, invocationId, input, this.options.log)).then(
      (output) => {
        const fields = { TaskScheduledId: taskId, Result: encode(output) };
        this.settle(instance, generation, { event: this.event(EventType.TaskCompleted, -1, fields) }, taskId);
      },
      (error: unknown) => {
        const event = this.event(EventType.TaskFailed, -1, {
          TaskScheduledId: taskId,
          ...failure('Activity', name, error),
        });
        // The orchestrator answers a failed attempt by tracking a back-off timer under the next sequence number.
        const after: AfterProcessing | undefined = retry ? { kind: 'retry-timer', retry } : undefined;
        this.settle(instance, generation, { event, ...(after ? { after } : {}) }, taskId);
      },
    );
  }

  protected scheduleRetryTimer(instance: Instance, retry: Retry): void {
    const delay = retryDelay(retry);
    const timerId = instance.nextId++;
    const fireAt = new Date(this.now().getTime() + delay);
    instance.history.push(this.event(EventType.TimerCreated, timerId, { FireAt: fireAt }));
    this.timers.add({
      instance,
      generation: instance.generation,
      timerId,
      fireAt,
      retry: { ...retry, attempt: retry.attempt + 1 },
    });
  }

  /**
   * A segment of a long timer fired: while the orchestrator's time is before the time it asked for, the next
   * segment starts under the next sequence number (durable-js' LongTimerTask tracks it while processing the
   * TimerFired; the extension's CreateTimer loop creates it in the same episode).
   */
  protected scheduleTimerSegment(
    instance: Instance,
    segment: { finalFireAt: string; actionIndex?: number },
    episodeTime: Date,
  ): void {
    const finalFireAt = new Date(segment.finalFireAt);
    if (finalFireAt <= episodeTime) return;
    const timerId = instance.nextId++;
    const fireAt = nextTimerSegment(episodeTime, finalFireAt, true);
    instance.history.push(this.event(EventType.TimerCreated, timerId, { FireAt: fireAt }));
    this.timers.add({
      instance,
      generation: instance.generation,
      timerId,
      fireAt,
      ...(segment.actionIndex === undefined ? {} : { actionIndex: segment.actionIndex }),
      ...(fireAt.getTime() === finalFireAt.getTime() ? {} : { finalFireAt }),
    });
  }

  protected settle(instance: Instance, generation: number, inbound: Inbound, taskId: number): void {
    this.running--;
    if (generation === instance.generation) instance.running.delete(taskId);
    if (generation === instance.generation && !TERMINAL.has(instance.status)) this.deliver(instance, inbound);
    else this.wake();
  }

  protected continueAsNew(instance: Instance, input: unknown): void {
    startNextExecution(instance, input, this.now());
    instance.executionId = randomUUID();
    // A fresh history: the next execution speaks the engine's schema.
    instance.replaySchema = this.replaySchema;
    this.timers.dropAll(instance);
  }

  protected finish(instance: Instance, status: RuntimeStatus, output: unknown): void {
    this.saver.changed(instance);
    const now = this.now();
    markFinished(instance, status, output, now);
    this.timers.dropAll(instance);
    const link = instance.parent;
    const parent = link ? this.instances.get(link.instanceId) : undefined;
    // A link from an older snapshot has no execution id: the parent's waiting for this very child decides.
    if (link && parent && (link.executionId === undefined || isChildOf(instance, parent, link.taskId))) {
      this.deliverOutcome(parent, instance, link.taskId);
    }
    const waiters = instance.waiters;
    instance.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
