/**
 * The activities of the provision-device workflow (src/provisioning/provision-device-workflow.ts has the
 * orchestrator): each step and its compensation, idempotent because the runtime may run an activity twice.
 */
import { DeviceAlreadyExistsError, ProvisioningInconsistencyError } from '../shared/errors.js';
import { claimCatalogEntry, deleteOwnCatalogEntry, type DeviceCatalog } from './catalog.js';
import { deviceConnectionString, generateKeys, type SymmetricKeys } from './keys.js';
import type { IdentityStore, PrivateFiles, SecretCipher } from './ports.js';
import {
  ProvisionDeviceActivity,
  hookFingerprint,
  resultsBlobName,
  type HookEvent,
  type ProvisioningHooks,
} from './provision-device-workflow.js';
import type { ProvisioningService } from './provisioning-service.js';
import { keysExpiry, openKeysFile, sealKeysFile, sealSecrets, type StoredResultLine } from './result-keys.js';
import { patient } from './throttle-wait.js';
import { validateDesiredPatch, type TwinStore } from './twin.js';

export interface ProvisionDeviceDeps {
  identities: IdentityStore;
  catalog: DeviceCatalog;
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
    // Store steps are `patient`: throttling becomes a durable wait, a domain error a final refusal.
    [ProvisionDeviceActivity.createIdentity]: patient((input: { workflowId: string; deviceId: string }) =>
      createOwnIdentity(deps, input.workflowId, input.deviceId),
    ),

    [ProvisionDeviceActivity.writeCatalogEntry]: patient(
      async (input: {
        workflowId: string;
        deviceId: string;
        metadata: Record<string, unknown>;
        at: string;
      }) => {
        // The entry carries this workflow's id: a 409 is our own earlier write only when the ids match.
        await claimCatalogEntry(
          deps.catalog,
          {
            id: input.deviceId,
            status: 'disabled',
            metadata: input.metadata,
            createdAt: input.at,
            updatedAt: input.at,
          },
          input.workflowId,
        );
        return { deviceId: input.deviceId };
      },
    ),

    [ProvisionDeviceActivity.setInitialTwin]: patient((input: { deviceId: string; model?: unknown }) =>
      setInitialTwin(deps, input.deviceId, input.model),
    ),

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

    [ProvisionDeviceActivity.activate]: patient(async (input: { deviceId: string }) => {
      await deps.service.setStatus(input.deviceId, 'enabled');
      return { deviceId: input.deviceId, status: 'enabled' };
    }),

    // Compensation removes only what this workflow made: its own catalog entry, an identity with its keys.
    [ProvisionDeviceActivity.deleteCatalogEntry]: patient(
      async (input: { deviceId: string; workflowId: string }) => ({
        deleted: await deleteOwnCatalogEntry(deps.catalog, input.deviceId, input.workflowId),
      }),
    ),

    [ProvisionDeviceActivity.deleteIdentity]: patient(
      async (input: { deviceId: string; workflowId: string }) => ({
        deleted: await deleteOwnIdentity(deps, input.workflowId, input.deviceId),
      }),
    ),

    [ProvisionDeviceActivity.publishOutcome]: patient((input: OutcomeInput) => publishOutcome(deps, input)),

    [ProvisionDeviceActivity.discardKeys]: async (input: { workflowId: string }) => {
      await deps.work.deletePrefix(keysBlob(input.workflowId));
      return { discarded: true };
    },
  };
}

/** The keys this workflow generated (its work blob), opened; `stored` is the blob's text. */
const openOwnKeys = (deps: ProvisionDeviceDeps, workflowId: string, stored: string) =>
  openKeysFile(deps.cipher, keysBlob(workflowId), stored) as SymmetricKeys;

/**
 * Creates the device's identity, disabled, with keys fixed (write-once work blob) before the identity exists,
 * so a second run recognises its own identity by them.
 */
async function createOwnIdentity(deps: ProvisionDeviceDeps, workflowId: string, deviceId: string) {
  const name = keysBlob(workflowId);
  const keys = openOwnKeys(
    deps,
    workflowId,
    await deps.work.writeOnce(name, sealKeysFile(deps.cipher, name, generateKeys())),
  );
  try {
    await deps.identities.create(deviceId, keys, 'disabled');
  } catch (error) {
    if (!(error instanceof DeviceAlreadyExistsError)) throw error;
    const existing = await deps.identities.get(deviceId);
    if (existing?.keys.primaryKey !== keys.primaryKey) throw error;
  }
  return { deviceId, status: 'disabled' };
}

/** Applies the twin template of the device's model (or the default one), when there is a non-empty one. */
async function setInitialTwin(deps: ProvisionDeviceDeps, deviceId: string, modelInput: unknown) {
  const model = typeof modelInput === 'string' ? modelInput : undefined;
  const template =
    (model !== undefined ? deps.twinTemplates[model] : undefined) ?? deps.twinTemplates.default;
  if (!template || Object.keys(template).length === 0) return { applied: false };
  validateDesiredPatch(template);
  await deps.twins.patchDesired(deviceId, template);
  return { applied: true, template: model !== undefined && deps.twinTemplates[model] ? model : 'default' };
}

/** Removes the device's identity only when it carries the keys this workflow generated; true when removed. */
async function deleteOwnIdentity(deps: ProvisionDeviceDeps, workflowId: string, deviceId: string) {
  const stored = await deps.work.read(keysBlob(workflowId));
  const existing = await deps.identities.get(deviceId);
  if (existing === undefined) return false;
  if (stored === undefined) {
    // Without the keys this workflow generated, the identity is not provably its own: left alone, and
    // reported as not compensated (a refusal, not retried).
    throw new ProvisioningInconsistencyError(
      `identity '${deviceId}' left in place: not provably this workflow's (its keys blob is gone)`,
      deviceId,
      false,
    );
  }
  if (existing.keys.primaryKey !== openOwnKeys(deps, workflowId, stored).primaryKey) return false;
  return deps.identities.delete(deviceId);
}

/** What the orchestrator publishes: success (the keys go out sealed), or failure/cancel with the reason. */
interface OutcomeInput {
  workflowId: string;
  deviceId: string;
  ok: boolean;
  cancelled?: boolean;
  failedStep?: string;
  reason?: string;
}

/**
 * Writes the outcome line to the private results blob (keys and connection string sealed, for a bounded time),
 * then removes the work blob of keys. Idempotent: a run that published and cleaned up already answers the same.
 */
async function publishOutcome(deps: ProvisionDeviceDeps, input: OutcomeInput) {
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
    ? provisionedLine(
        deps,
        input.workflowId,
        input.deviceId,
        openOwnKeys(deps, input.workflowId, stored ?? '{}'),
      )
    : {
        deviceId: input.deviceId,
        outcome: input.cancelled === true ? 'cancelled' : 'failed',
        failedStep: input.failedStep,
        reason: input.reason,
      };
  await deps.results.write(name, JSON.stringify(line) + '\n');
  await deps.work.deletePrefix(keysBlob(input.workflowId));
  return { results: shown };
}

/** The result line of a provisioned device: its keys and connection string sealed, served until they expire. */
function provisionedLine(
  deps: ProvisionDeviceDeps,
  workflowId: string,
  deviceId: string,
  keys: SymmetricKeys,
): StoredResultLine {
  const connectionString = deviceConnectionString(deps.hostName, deviceId, keys);
  return {
    deviceId,
    outcome: 'provisioned',
    sealed: sealSecrets(deps.cipher, workflowId, deviceId, { keys, connectionString }),
    keysExpireAt: keysExpiry(deps.now?.() ?? new Date(), deps.keysRetentionMs),
  };
}
