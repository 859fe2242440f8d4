/**
 * The provisioning workflow of one device (seed 002 §3.4): create identity → write registry → set the initial
 * twin → call the external hooks (SIM activation, billing, …) → activate. A failure compensates the steps
 * already done in reverse order and ends the orchestration as Failed with the reason.
 *
 * Keys never enter orchestration history, status or logs: the identity is created with keys kept, encrypted, in
 * a private work blob, and the published outcome (keys sealed, for a bounded time: result-keys.ts) goes to the
 * private results container. The work blob is removed on every path that ends the workflow.
 */
import { createHash } from 'node:crypto';
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { DeviceAlreadyExistsError } from '../shared/errors.js';
import { generateKeys, type SymmetricKeys } from './keys.js';
import type { IdentityStore, PrivateFiles, SecretCipher } from './ports.js';
import type { ProvisioningService } from './provisioning-service.js';
import type { DeviceRegistry } from './registry.js';
import { keysExpiry, openKeysFile, sealKeysFile, sealSecrets, type StoredResultLine } from './result-keys.js';
import { validateDesiredPatch, type TwinStore } from './twin.js';
import { failureMessage } from '../shared/workflows.js';

export const PROVISION_DEVICE = 'provisionDevice';

export const ProvisionDeviceActivity = {
  createIdentity: 'provisionDeviceCreateIdentity',
  writeRegistry: 'provisionDeviceWriteRegistry',
  setInitialTwin: 'provisionDeviceSetInitialTwin',
  callHook: 'provisionDeviceCallHook',
  activate: 'provisionDeviceActivate',
  deleteRegistry: 'provisionDeviceDeleteRegistry',
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

export type ProvisionStep =
  'create-identity' | 'write-registry' | 'set-initial-twin' | 'call-hooks' | 'activate';

/** How hooks are retried: 5 attempts, 5 s then doubling up to 1 min. */
function hookRetry(): df.RetryOptions {
  const options = new df.RetryOptions(5000, 5);
  options.backoffCoefficient = 2;
  options.maxRetryIntervalInMilliseconds = 60_000;
  return options;
}

/** Store steps ride out short outages (429, 503): 5 attempts, 2 s doubling. The activities are idempotent. */
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

/** The orchestrator. Deterministic: time from `currentUtcDateTime`, ids from the input, no I/O. */
export function* provisionDeviceOrchestrator(
  context: OrchestrationContext,
): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<ProvisionDeviceInput>();
  const { deviceId, metadata, hooks } = input;
  const workflowId = context.df.instanceId;
  const done = { identity: false, registry: false, hooks: [] as number[], attemptedHook: -1 };
  let step: ProvisionStep = 'create-identity';
  const report = (extra: Record<string, unknown> = {}) => {
    context.df.setCustomStatus({ deviceId, step, ...extra });
  };
  const hookEvent = (event: HookEvent['event']): HookEvent => ({ event, deviceId, metadata, workflowId });

  try {
    report();
    yield context.df.callActivityWithRetry(ProvisionDeviceActivity.createIdentity, stepRetry(), {
      workflowId,
      deviceId,
    });
    done.identity = true;

    step = 'write-registry';
    report();
    yield context.df.callActivityWithRetry(ProvisionDeviceActivity.writeRegistry, stepRetry(), {
      deviceId,
      metadata,
      at: context.df.currentUtcDateTime.toISOString(),
    });
    done.registry = true;

    step = 'set-initial-twin';
    report();
    yield context.df.callActivity(ProvisionDeviceActivity.setInitialTwin, {
      deviceId,
      model: metadata.model,
    });

    step = 'call-hooks';
    for (const [index, fingerprint] of hooks.entries()) {
      report({ hook: index + 1, hooks: hooks.length });
      done.attemptedHook = index;
      yield context.df.callActivityWithRetry(ProvisionDeviceActivity.callHook, hookRetry(), {
        index,
        fingerprint,
        event: hookEvent('device.provisioned'),
        idempotencyKey: `${workflowId}:provisioned:${index}`,
      });
      done.hooks.push(index);
    }

    step = 'activate';
    report();
    yield context.df.callActivityWithRetry(ProvisionDeviceActivity.activate, stepRetry(), { deviceId });
  } catch (error) {
    const failedStep = step;
    const reason = failureMessage(error);
    context.df.setCustomStatus({ deviceId, step: 'compensating', failedStep, reason });
    const compensated: string[] = [];
    const problems: string[] = [];
    const undo = function* (
      label: string,
      activity: string,
      payload: unknown,
    ): Generator<Task, void, unknown> {
      try {
        yield context.df.callActivityWithRetry(activity, compensationRetry(), payload);
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
        event: hookEvent('device.provisioning-cancelled'),
        idempotencyKey: `${workflowId}:cancelled:${index}`,
      });
    }
    if (done.registry) yield* undo('registry', ProvisionDeviceActivity.deleteRegistry, { deviceId });
    if (done.identity) yield* undo('identity', ProvisionDeviceActivity.deleteIdentity, { deviceId });
    yield* undo('outcome', ProvisionDeviceActivity.publishOutcome, {
      workflowId,
      deviceId,
      ok: false,
      failedStep,
      reason,
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
    context.df.setCustomStatus({ deviceId, step: 'failed', failedStep, reason, compensated, problems });
    throw new Error(
      `Provisioning of '${deviceId}' failed at step '${failedStep}': ${reason}. Compensated: ${compensated.join(', ') || 'nothing to undo'}` +
        (problems.length > 0 ? `. NOT compensated: ${problems.join('; ')}` : '.'),
    );
  }

  // The device is provisioned and active: a failure from here on is not undone, only reported.
  try {
    const { results } = (yield context.df.callActivityWithRetry(
      ProvisionDeviceActivity.publishOutcome,
      stepRetry(),
      {
        workflowId,
        deviceId,
        ok: true,
      },
    )) as { results: string };
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

export interface ProvisionDeviceDeps {
  identities: IdentityStore;
  registry: DeviceRegistry;
  twins: TwinStore;
  service: ProvisioningService;
  hooks: ProvisioningHooks;
  /** The configured webhook URLs (`Provisioning__Hooks`); history names them by fingerprint only. */
  hookUrls: readonly string[];
  /** Private work blobs (generated keys while the workflow runs). */
  work: PrivateFiles;
  /** Private results blobs (`{instanceId}.jsonl`). */
  results: PrivateFiles;
  /** Name of the results container, shown with the blob name. */
  resultsContainer: string;
  /** Encrypts the generated keys in the work and results blobs. */
  cipher: SecretCipher;
  /** How long the results serve the keys, ms. */
  keysRetentionMs: number;
  now?: () => Date;
  twinTemplates: Record<string, Record<string, unknown>>;
  /** IoT Hub host name for connection strings. */
  hostName: string;
}

const keysBlob = (workflowId: string) => `keys/${workflowId}.json`;

/** Activity handlers of the workflow. Each is idempotent: the runtime may run an activity twice. */
export function makeProvisionDeviceActivities(deps: ProvisionDeviceDeps) {
  return {
    [ProvisionDeviceActivity.createIdentity]: async (input: { workflowId: string; deviceId: string }) => {
      // The keys are fixed before the identity exists, so a second run recognises its own identity.
      const name = keysBlob(input.workflowId);
      const keys = openKeysFile(
        deps.cipher,
        name,
        await deps.work.writeOnce(name, sealKeysFile(deps.cipher, name, generateKeys())),
      ) as SymmetricKeys;
      try {
        await deps.identities.create(input.deviceId, keys, 'disabled');
      } catch (error) {
        if (!(error instanceof DeviceAlreadyExistsError)) throw error;
        const existing = await deps.identities.get(input.deviceId);
        if (existing?.keys.primaryKey !== keys.primaryKey) throw error;
      }
      return { deviceId: input.deviceId, status: 'disabled' };
    },

    [ProvisionDeviceActivity.writeRegistry]: async (input: {
      deviceId: string;
      metadata: Record<string, unknown>;
      at: string;
    }) => {
      try {
        await deps.registry.create({
          id: input.deviceId,
          status: 'disabled',
          metadata: input.metadata,
          createdAt: input.at,
          updatedAt: input.at,
        });
      } catch (error) {
        // This workflow owns the identity (created above), so an entry under its id is its own earlier write.
        if (!(error instanceof DeviceAlreadyExistsError)) throw error;
      }
      return { deviceId: input.deviceId };
    },

    [ProvisionDeviceActivity.setInitialTwin]: async (input: { deviceId: string; model?: unknown }) => {
      const model = typeof input.model === 'string' ? input.model : undefined;
      const template =
        (model !== undefined ? deps.twinTemplates[model] : undefined) ?? deps.twinTemplates.default;
      if (!template || Object.keys(template).length === 0) return { applied: false };
      validateDesiredPatch(template);
      await deps.twins.patchDesired(input.deviceId, template);
      return {
        applied: true,
        template: model !== undefined && deps.twinTemplates[model] ? model : 'default',
      };
    },

    [ProvisionDeviceActivity.callHook]: async (input: {
      index: number;
      fingerprint: string;
      event: HookEvent;
      idempotencyKey: string;
    }) => {
      const url = deps.hookUrls.find((candidate) => hookFingerprint(candidate) === input.fingerprint);
      if (url === undefined) {
        // The settings changed while this workflow ran: never send the event to a different system.
        throw new Error(`Hook ${input.index + 1} is no longer configured (Provisioning__Hooks changed).`);
      }
      await deps.hooks.call(url, input.event, input.idempotencyKey);
      return { called: true };
    },

    [ProvisionDeviceActivity.activate]: async (input: { deviceId: string }) => {
      await deps.service.setStatus(input.deviceId, 'enabled');
      return { deviceId: input.deviceId, status: 'enabled' };
    },

    [ProvisionDeviceActivity.deleteRegistry]: async (input: { deviceId: string }) => ({
      deleted: await deps.registry.delete(input.deviceId),
    }),

    [ProvisionDeviceActivity.deleteIdentity]: async (input: { deviceId: string }) => ({
      deleted: await deps.identities.delete(input.deviceId),
    }),

    [ProvisionDeviceActivity.publishOutcome]: async (input: {
      workflowId: string;
      deviceId: string;
      ok: boolean;
      failedStep?: string;
      reason?: string;
    }) => {
      const name = `${input.workflowId}.jsonl`;
      const shown = resultsBlobName(deps.resultsContainer, input.workflowId);
      const stored = await deps.work.read(keysBlob(input.workflowId));
      if (input.ok && stored === undefined) {
        // An earlier run published and cleaned up already.
        if ((await deps.results.read(name)) !== undefined) return { results: shown };
        throw new Error(
          `The keys of workflow '${input.workflowId}' are missing; the outcome cannot be published.`,
        );
      }
      const line: StoredResultLine = input.ok
        ? (() => {
            const keys = openKeysFile(
              deps.cipher,
              keysBlob(input.workflowId),
              stored ?? '{}',
            ) as SymmetricKeys;
            const connectionString = `HostName=${deps.hostName};DeviceId=${input.deviceId};SharedAccessKey=${keys.primaryKey}`;
            return {
              deviceId: input.deviceId,
              outcome: 'provisioned',
              sealed: sealSecrets(deps.cipher, input.workflowId, input.deviceId, { keys, connectionString }),
              keysExpireAt: keysExpiry(deps.now?.() ?? new Date(), deps.keysRetentionMs),
            };
          })()
        : { deviceId: input.deviceId, outcome: 'failed', failedStep: input.failedStep, reason: input.reason };
      await deps.results.write(name, JSON.stringify(line) + '\n');
      await deps.work.deletePrefix(keysBlob(input.workflowId));
      return { results: shown };
    },

    [ProvisionDeviceActivity.discardKeys]: async (input: { workflowId: string }) => {
      await deps.work.deletePrefix(keysBlob(input.workflowId));
      return { discarded: true };
    },
  };
}
