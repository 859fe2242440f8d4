/**
 * Versioning of the eternal scheduledJob orchestration (ADR 0006): a deployment replaces the code while instances
 * run. An instance started by the released version 1 (frozen in test/fixtures/released) is saved mid-run, restored
 * by an engine running the current code, finishes that run the version-1 way (its history replays), and takes the
 * new behaviour from its next continue-as-new on.
 */
import type { OrchestrationHandler } from 'durable-functions';
import { describe, expect, it } from 'vitest';
import {
  SCHEDULED_JOB,
  SCHEDULED_JOB_VERSION,
  JobActivity,
  scheduledJobOrchestrator,
  type ScheduledJobInput,
} from '../../../src/jobs/scheduled-job-workflow.js';
import {
  DurableEngine,
  EventType,
  type ActivityHandler,
  type InstanceSnapshot,
  type InstanceStore,
} from '../../../tools/local-runtime/durable-engine.js';
import { scheduledJobOrchestrator as releasedV1 } from '../../fixtures/released/scheduled-job-workflow-v1.js';
import { REPLAY_SCHEMAS, nonDeterministicEpisodes, orchestrator } from '../../support/durable.js';

const START = new Date('2026-03-01T00:00:00Z');
const HOUR = 3_600_000;

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

/** An activity that stops when called (`reached`) and never returns: where a deployment stops the engine. */
interface Hold {
  name: string;
  reached: () => void;
}

/** The job's activities, in memory: every batch's hub job ends at once; `hold` stops one activity for good. */
function activities(records: string[], hold?: Hold) {
  const handlers: Record<string, ActivityHandler> = {
    [JobActivity.record]: (input) => {
      const { status, run } = input as { status: string; run?: { run: number } };
      records.push(run ? `${status} run ${run.run}` : status);
      return { status };
    },
    [JobActivity.resolveTarget]: () => [{ deviceIds: ['d1'] }],
    [JobActivity.startHubJob]: (input) => ({
      started: true,
      job: {
        hubJobId: (input as { hubJobId: string }).hubJobId,
        status: 'completed',
        statistics: { deviceCount: 1, succeededCount: 1, failedCount: 0, runningCount: 0, pendingCount: 0 },
      },
    }),
    [JobActivity.getHubJob]: () => null,
    [JobActivity.cancelHubJob]: () => null,
    [JobActivity.saveDeviceResults]: () => ({ kept: 0 }),
    [JobActivity.notify]: () => null,
  };
  if (hold) {
    const inner = handlers[hold.name] as ActivityHandler;
    handlers[hold.name] = async (input, context) => {
      hold.reached();
      await new Promise<void>(() => undefined);
      return inner(input, context);
    };
  }
  return new Map(Object.entries(handlers));
}

const v1Input: ScheduledJobInput = {
  jobId: 'eternal',
  // Due at once (startAt in the past), repeating every hour: version 1 records `scheduled` and waits 0 ms.
  request: {
    type: 'twinUpdate',
    target: { deviceIds: ['d1'] },
    twinPatch: { a: 1 },
    startAt: new Date(START.getTime() - HOUR).toISOString(),
    repeat: 'PT1H',
    maxExecutionTimeInSeconds: 3600,
    notify: false,
  },
  run: 1,
  pollIntervalMs: 10_000,
};

const current = orchestrator(scheduledJobOrchestrator as OrchestrationHandler);
const released = orchestrator(releasedV1 as OrchestrationHandler);

describe.each(REPLAY_SCHEMAS)('scheduledJob versioning (schema %s)', (replaySchema) => {
  const engine = (
    code: typeof current,
    store: InstanceStore,
    records: string[],
    at: Date,
    hold?: Parameters<typeof activities>[1],
  ) =>
    new DurableEngine({
      orchestrators: new Map([[SCHEDULED_JOB, code]]),
      activities: activities(records, hold),
      clock: 'manual',
      startTime: at,
      store,
      replaySchema,
    });

  /** Version 1 runs the instance up to its hub job start, where the deployment stops it. */
  async function startedByV1(): Promise<MemoryStore> {
    const store = new MemoryStore();
    const v1Records: string[] = [];
    let reached = (): void => undefined;
    const atHubJob = new Promise<void>((resolve) => (reached = resolve));
    const v1 = engine(released, store, v1Records, START, { name: JobActivity.startHubJob, reached });
    await v1.startDurably(SCHEDULED_JOB, 'eternal', v1Input);
    await atHubJob;
    expect(v1Records).toEqual(['scheduled', 'running run 1']);
    v1.stopDispatching();
    await v1.saveAll();
    return store;
  }

  it('a run started by version 1 finishes under the current code, which takes over at the next occurrence', async () => {
    const store = await startedByV1();
    const records: string[] = [];
    const v2 = engine(current, store, records, START);
    await v2.restore();
    await v2.idle();
    // Run 1 completed the version-1 way, continued as new with the current version, and waits for run 2.
    expect(records).toEqual(['scheduled run 1', 'scheduled']);
    const executions = v2.executions('eternal');
    expect(executions.map((e) => (e.input as ScheduledJobInput).version)).toEqual([
      undefined,
      SCHEDULED_JOB_VERSION,
    ]);
    expect(v2.status('eternal')?.runtimeStatus).toBe('Running');
    expect(await nonDeterministicEpisodes(v2, 'eternal', current)).toEqual([]);

    v2.advance(HOUR);
    await v2.idle();
    expect(records.slice(2)).toEqual(['running run 2', 'scheduled run 2', 'scheduled']);
    expect(await nonDeterministicEpisodes(v2, 'eternal', current)).toEqual([]);
  });

  it('without the version gate, the current code would misread the version-1 history', async () => {
    const store = await startedByV1();
    // As if the current code ignored the input's version: it replays version 1's history its own way.
    const snapshot = JSON.parse(store.kept.get('eternal') as string) as InstanceSnapshot;
    snapshot.input = { ...(snapshot.input as ScheduledJobInput), version: SCHEDULED_JOB_VERSION };
    store.kept.set('eternal', JSON.stringify(snapshot));
    const records: string[] = [];
    const v2 = engine(current, store, records, START);
    await v2.restore();
    await v2.idle();
    // Run 1's outcome is never recorded: the current code took version 1's replies for other tasks, and the job
    // continued as new as if the run had been recorded (the gated code records `scheduled run 1` here).
    expect(records).toEqual(['scheduled']);
    expect(v2.executions('eternal')).toHaveLength(2);
  });

  it('the current code keeps version 1 for a version-1 input, and starts a due version-2 occurrence at once', async () => {
    const timersOfFirstRun = async (input: ScheduledJobInput) => {
      const records: string[] = [];
      const v2 = engine(current, new MemoryStore(), records, START);
      v2.start(SCHEDULED_JOB, input.jobId, input);
      await v2.idle();
      const first = v2.executions(input.jobId)[0]?.history ?? [];
      return {
        records: records.slice(0, 2),
        timers: first.filter((e) => e.EventType === EventType.TimerCreated).length,
      };
    };
    // Version 1: `scheduled` recorded and a 0 ms wait before the run (then one wait per batch, one before the outcome).
    expect(await timersOfFirstRun({ ...v1Input, jobId: 'v1' })).toEqual({
      records: ['scheduled', 'running run 1'],
      timers: 3,
    });
    expect(await timersOfFirstRun({ ...v1Input, jobId: 'v2', version: SCHEDULED_JOB_VERSION })).toEqual({
      records: ['running run 1', 'scheduled run 1'],
      timers: 2,
    });
  });
});
