/**
 * The provisioning workflow of one device (seed 002 §3.4): create identity → write the catalog entry → set the initial
 * twin → call the external hooks (SIM activation, billing, …) → activate. A failure compensates the steps
 * already done in reverse order and ends the orchestration as Failed with the reason; a `cancel` event
 * (POST /api/provisioning/{id}/cancel) compensates the same way and ends it Completed with outcome `cancelled`.
 * Throttling waits on durable timers and never fails a step (`throttle-wait.ts`).
 *
 * Keys never enter orchestration history, status or logs: the identity is created with keys kept, encrypted, in
 * a private work blob, and the published outcome (keys sealed, for a bounded time: result-keys.ts) goes to the
 * private results container. The work blob is removed on every path that ends the workflow.
 */
import { createHash } from 'node:crypto';
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { CancelWatch, WorkflowCancelledError, callPatiently } from './throttle-wait.js';
import { failureMessage } from '../shared/workflows.js';

export const PROVISION_DEVICE = 'provisionDevice';
/** The external event that cancels a provisioning workflow (POST /api/provisioning/{id}/cancel). */
export const CANCEL_PROVISIONING_EVENT = 'cancel';

export const ProvisionDeviceActivity = {
  createIdentity: 'provisionDeviceCreateIdentity',
  // Activity names are in running instances' histories: the strings keep the old word "registry".
  writeCatalogEntry: 'provisionDeviceWriteRegistry',
  setInitialTwin: 'provisionDeviceSetInitialTwin',
  callHook: 'provisionDeviceCallHook',
  activate: 'provisionDeviceActivate',
  deleteCatalogEntry: 'provisionDeviceDeleteRegistry',
  deleteIdentity: 'provisionDeviceDeleteIdentity',
  publishOutcome: 'provisionDevicePublishOutcome',
  discardKeys: 'provisionDeviceDiscardKeys',
} as const;

/** What the HTTP starter gives the orchestration (it ends up in history: no secrets). */
export interface ProvisionDeviceInput {
  deviceId: string;
  metadata: Record<string, unknown>;
  /**
   * Fingerprints of the webhooks to call, in order (`hookFingerprint`), fixed when the workflow starts. Hook
   * URLs may carry tokens, so history holds fingerprints and the activity takes the URL from the settings.
   */
  hooks: string[];
  requestedAt: string;
}

/** The event each hook receives (POST, JSON). Never any key. */
export interface HookEvent {
  event: 'device.provisioned' | 'device.provisioning-cancelled';
  deviceId: string;
  metadata: Record<string, unknown>;
  workflowId: string;
}

/** Calls one provisioning webhook; throws when it does not answer 2xx. `idempotencyKey` is the same on retries. */
export interface ProvisioningHooks {
  call(url: string, event: HookEvent, idempotencyKey: string): Promise<void>;
}

/** A non-secret name for a hook URL (SHA-256, 16 hex digits): what orchestration history holds. */
export const hookFingerprint = (url: string) => createHash('sha256').update(url).digest('hex').slice(0, 16);

/** Where a provisioning run's outcome lines are published: `provisioning-results/{instanceId}.jsonl`. */
export const resultsBlobName = (resultsContainer: string, instanceId: string) =>
  `${resultsContainer}/${instanceId}.jsonl`;

/** Step names are API values (workflow status, problem texts) and in histories: 'write-registry' is kept. */
export type ProvisionStep =
  'create-identity' | 'write-registry' | 'set-initial-twin' | 'call-hooks' | 'activate';

/** How hooks are retried: 5 attempts, 5 s then doubling up to 1 min. */
function hookRetry(): df.RetryOptions {
  const options = new df.RetryOptions(5000, 5);
  options.backoffCoefficient = 2;
  options.maxRetryIntervalInMilliseconds = 60_000;
  return options;
}

/**
 * Store steps ride out unexpected failures: 5 attempts, 2 s doubling (the activities are idempotent). Throttling
 * and outages do not use these attempts: they wait on durable timers (`callPatiently`).
 */
function stepRetry(): df.RetryOptions {
  const options = new df.RetryOptions(2000, 5);
  options.backoffCoefficient = 2;
  return options;
}

/** Compensation steps are retried too: leaving a half-provisioned device behind is worse than waiting. */
function compensationRetry(): df.RetryOptions {
  const options = new df.RetryOptions(2000, 4);
  options.backoffCoefficient = 2;
  return options;
}

/** What the orchestration has done so far: what compensation undoes. */
interface Progress {
  step: ProvisionStep;
  identity: boolean;
  catalogEntry: boolean;
  hooks: number[];
  attemptedHook: number;
}

/**
 * The forward steps, up to and including activation. The cancel event is looked at before every step and ends
 * every throttle wait; a step already running finishes first (its effect is then compensated like the others).
 */
function* provisionSteps(
  context: OrchestrationContext,
  input: ProvisionDeviceInput,
  done: Progress,
  cancel: CancelWatch,
): Generator<Task, void, unknown> {
  const { deviceId, metadata, hooks } = input;
  const workflowId = context.df.instanceId;
  const report = (extra: Record<string, unknown> = {}) => {
    context.df.setCustomStatus({ deviceId, step: done.step, ...extra });
  };
  const run = function* (step: ProvisionStep, activity: string, payload: unknown) {
    if (cancel.requested()) throw new WorkflowCancelledError();
    done.step = step;
    report();
    return yield* callPatiently(context, activity, stepRetry(), payload, {
      cancel,
      onWait: (wait, delayMs) => {
        report({ throttledWaits: wait, waitSeconds: delayMs / 1000 });
      },
    });
  };

  yield* run('create-identity', ProvisionDeviceActivity.createIdentity, { workflowId, deviceId });
  done.identity = true;
  const at = context.df.currentUtcDateTime.toISOString();
  yield* run('write-registry', ProvisionDeviceActivity.writeCatalogEntry, {
    workflowId,
    deviceId,
    metadata,
    at,
  });
  done.catalogEntry = true;
  yield* run('set-initial-twin', ProvisionDeviceActivity.setInitialTwin, { deviceId, model: metadata.model });

  done.step = 'call-hooks';
  for (const [index, fingerprint] of hooks.entries()) {
    if (cancel.requested()) throw new WorkflowCancelledError();
    report({ hook: index + 1, hooks: hooks.length });
    done.attemptedHook = index;
    yield* cancel.await(
      context.df.callActivityWithRetry(ProvisionDeviceActivity.callHook, hookRetry(), {
        index,
        fingerprint,
        event: { event: 'device.provisioned', deviceId, metadata, workflowId } satisfies HookEvent,
        idempotencyKey: `${workflowId}:provisioned:${index}`,
      }),
    );
    done.hooks.push(index);
  }
  yield* run('activate', ProvisionDeviceActivity.activate, { deviceId });
}

/**
 * Undoes what was done, in reverse order, after a failure or a cancel; returns what was and was not undone.
 * Each undo waits out throttling too, and never removes a catalog entry or identity this workflow did not make.
 */
function* compensate(
  context: OrchestrationContext,
  input: ProvisionDeviceInput,
  done: Progress,
  outcome: { cancelled: boolean; reason: string },
): Generator<Task, { compensated: string[]; problems: string[] }, unknown> {
  const { deviceId, metadata, hooks } = input;
  const workflowId = context.df.instanceId;
  const compensated: string[] = [];
  const problems: string[] = [];
  const undo = function* (label: string, activity: string, payload: unknown): Generator<Task, void, unknown> {
    try {
      // Hooks are plain activities (their own retries); the store activities are patient.
      if (activity === ProvisionDeviceActivity.callHook) {
        yield context.df.callActivityWithRetry(activity, compensationRetry(), payload);
      } else yield* callPatiently(context, activity, compensationRetry(), payload);
      compensated.push(label);
    } catch (undoError) {
      problems.push(`${label}: ${failureMessage(undoError)}`);
    }
  };
  // The hook that failed may have acted before it failed (a timeout): it is told too.
  const toCancel =
    done.attemptedHook > (done.hooks.at(-1) ?? -1) ? [...done.hooks, done.attemptedHook] : done.hooks;
  for (const index of [...toCancel].reverse()) {
    yield* undo(`hook ${index + 1}`, ProvisionDeviceActivity.callHook, {
      index,
      fingerprint: hooks[index],
      event: { event: 'device.provisioning-cancelled', deviceId, metadata, workflowId } satisfies HookEvent,
      idempotencyKey: `${workflowId}:cancelled:${index}`,
    });
  }
  // 'registry' (like the step 'write-registry') is a label clients read in the workflow's output: kept.
  if (done.catalogEntry)
    yield* undo('registry', ProvisionDeviceActivity.deleteCatalogEntry, { deviceId, workflowId });
  if (done.identity)
    yield* undo('identity', ProvisionDeviceActivity.deleteIdentity, { deviceId, workflowId });
  yield* undo('outcome', ProvisionDeviceActivity.publishOutcome, {
    workflowId,
    deviceId,
    ok: false,
    ...(outcome.cancelled ? { cancelled: true } : {}),
    failedStep: done.step,
    reason: outcome.reason,
  });
  // Publishing removes the work blob of keys; when it could not, the blob is removed on its own.
  if (!compensated.includes('outcome')) {
    try {
      yield context.df.callActivityWithRetry(ProvisionDeviceActivity.discardKeys, compensationRetry(), {
        workflowId,
      });
    } catch (discardError) {
      problems.push(`work files: ${failureMessage(discardError)}`);
    }
  }
  return { compensated, problems };
}

/** The orchestrator. Deterministic: time from `currentUtcDateTime`, ids from the input, no I/O. */
export function* provisionDeviceOrchestrator(
  context: OrchestrationContext,
): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<ProvisionDeviceInput>();
  const { deviceId } = input;
  const workflowId = context.df.instanceId;
  // One task for the whole execution: a cancel that arrives while a step runs completes it, and the check
  // before the next step sees that.
  const cancel = new CancelWatch(context, context.df.waitForExternalEvent(CANCEL_PROVISIONING_EVENT));
  const done: Progress = {
    step: 'create-identity',
    identity: false,
    catalogEntry: false,
    hooks: [],
    attemptedHook: -1,
  };

  try {
    yield* provisionSteps(context, input, done, cancel);
  } catch (error) {
    const failedStep = done.step;
    const cancelled = error instanceof WorkflowCancelledError;
    const reason = cancelled ? 'cancelled by request' : failureMessage(error);
    context.df.setCustomStatus({
      deviceId,
      step: cancelled ? 'cancelling' : 'compensating',
      failedStep,
      reason,
    });
    const { compensated, problems } = yield* compensate(context, input, done, { cancelled, reason });
    const summary = { deviceId, failedStep, reason, compensated, problems };
    if (cancelled) {
      context.df.setCustomStatus({ ...summary, step: 'cancelled' });
      return { deviceId, outcome: 'cancelled', cancelledAtStep: failedStep, compensated, problems };
    }
    context.df.setCustomStatus({ ...summary, step: 'failed' });
    throw new Error(
      `Provisioning of '${deviceId}' failed at step '${failedStep}': ${reason}. Compensated: ${compensated.join(', ') || 'nothing to undo'}` +
        (problems.length > 0 ? `. NOT compensated: ${problems.join('; ')}` : '.'),
    );
  }

  // The device is provisioned and active: a failure (or a cancel) from here on is not undone, only reported.
  try {
    const { results } = (yield* callPatiently(context, ProvisionDeviceActivity.publishOutcome, stepRetry(), {
      workflowId,
      deviceId,
      ok: true,
    })) as { results: string };
    context.df.setCustomStatus({ deviceId, step: 'done' });
    return { deviceId, outcome: 'provisioned', results };
  } catch (error) {
    const reason = failureMessage(error);
    context.df.setCustomStatus({ deviceId, step: 'publish-failed', reason });
    // No key is kept where nobody will fetch it: the device's keys are its identity's, reset to get new ones.
    let discarded = true;
    try {
      yield context.df.callActivityWithRetry(ProvisionDeviceActivity.discardKeys, compensationRetry(), {
        workflowId,
      });
    } catch {
      discarded = false;
    }
    throw new Error(
      `Device '${deviceId}' is provisioned and active, but its outcome could not be published (${reason}); ` +
        `reset its credentials (POST /api/devices/${deviceId}/reset-credentials) to get keys` +
        (discarded ? '.' : `; the work blob keys/${workflowId}.json could not be removed either.`),
    );
  }
}
