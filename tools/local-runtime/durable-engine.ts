/**
 * A local Durable Functions engine. It runs orchestrator functions through durable-functions' own replay
 * protocol (history in, actions out, as the Durable Task extension drives them in Azure) and applies the
 * actions: activities (with retry), durable timers, sub-orchestrations, external events and continue-as-new.
 * The tests drive every workflow through it, and the embedded local runtime will serve it.
 *
 * Time is either real (timers wait) or virtual: a virtual clock jumps to the next timer as soon as nothing
 * else can run, so an orchestration that sleeps for hours finishes in milliseconds with the same history.
 */
import {
  EventType,
  TERMINAL,
  awaitedChildren,
  encode,
  instanceFromSnapshot,
  isChildOf,
  statusOf,
  type Execution,
  type Instance,
  type InstanceStatus,
} from './durable-history.js';
import type { ReplaySchemaName } from './durable-actions.js';
import { DurableScheduler, schemaOf } from './durable-scheduler.js';
import { InstanceNotSavedError } from './durable-store.js';

// The engine's parts are modules of their own; what its users name is re-exported here.
export { EventType, InstanceNotSavedError };
export type {
  ActivityHandler,
  Episode,
  Execution,
  HistoryEvent,
  InstanceSnapshot,
  InstanceStatus,
  OrchestratorHandler,
  RuntimeStatus,
} from './durable-history.js';
export type { InstanceStore } from './durable-store.js';

export type { DurableEngineOptions } from './durable-scheduler.js';

export class DurableEngine extends DurableScheduler {
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
      this.saver.forget(instance);
      try {
        await this.saver.saveNow(instance);
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
    this.saver.forget(instance);
    this.saver.delete(instanceId);
    return this.instances.delete(instanceId);
  }

  status(instanceId: string): InstanceStatus | undefined {
    const i = this.instances.get(instanceId);
    return i && statusOf(i);
  }

  list(): InstanceStatus[] {
    return [...this.instances.keys()].flatMap((id) => this.status(id) ?? []);
  }

  /** The replay schema the instance's current execution runs under (a restored one keeps its own). */
  replaySchemaOf(instanceId: string): ReplaySchemaName | undefined {
    const i = this.instances.get(instanceId);
    return i && schemaOf(i);
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
      const instance = instanceFromSnapshot(snap);
      this.instances.set(instance.instanceId, instance);
      this.timers.restore(instance, snap.timers);
      if (!TERMINAL.has(instance.status)) {
        for (const [taskId, activity] of snap.running) {
          this.startActivity(instance, taskId, activity);
        }
      }
    }
    for (const instance of this.instances.values()) {
      if (!TERMINAL.has(instance.status)) this.reconnectChildren(instance);
    }
    this.wake();
    return snapshots.length;
  }

  /**
   * Instances are saved one at a time, so a crash can keep a parent's history naming a child whose first save
   * was lost, or a child saved as finished while the parent's saved inbox lacks its outcome. The parent's
   * history is the truth: a lost child is started again, a lost outcome is delivered again.
   */
  private reconnectChildren(parent: Instance): void {
    for (const awaited of awaitedChildren(parent)) {
      const child = this.instances.get(awaited.instanceId);
      if (child && isChildOf(child, parent, awaited.taskId)) {
        if (TERMINAL.has(child.status)) this.deliverOutcome(parent, child, awaited.taskId);
      } else if (!child || TERMINAL.has(child.status)) {
        const link = {
          instanceId: parent.instanceId,
          taskId: awaited.taskId,
          executionId: parent.executionId,
        };
        try {
          this.create(awaited.name, awaited.instanceId, awaited.input, link);
          this.options.log?.(`durable: ${awaited.instanceId} started again (its start was lost in a crash)`);
        } catch (error) {
          // e.g. its orchestrator no longer exists: the parent hears of a failed child; the start goes on.
          const output = error instanceof Error ? error.message : String(error);
          this.deliverOutcome(
            parent,
            { instanceId: awaited.instanceId, name: awaited.name, status: 'Failed', output },
            awaited.taskId,
          );
        }
      } else if (child.parent?.executionId !== undefined) {
        this.options.log?.(
          `durable: ${parent.instanceId} waits for ${awaited.instanceId}, which another instance started`,
        );
      }
    }
  }

  /**
   * Stops dispatching, as the Functions host stops the orchestration and activity triggers when it shuts down:
   * no further episode runs and no timer fires. Activities already running finish; their outcomes wait in the
   * inbox and are saved, so a restart goes on from there and re-runs only what was in flight.
   */
  stopDispatching(): void {
    this.dispatching = false;
  }

  /**
   * Saves what is not saved yet and waits for a save in progress; afterwards nothing more is saved (the last
   * step of a shutdown, before the storage goes away). Resolves with how many instances this call saved.
   */
  saveAll(): Promise<number> {
    return this.saver.saveAll();
  }
}
