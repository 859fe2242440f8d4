import { randomUUID } from 'node:crypto';
import { assertDeviceId } from '../shared/device-id.js';
import {
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  PreconditionFailedError,
  ProvisioningInconsistencyError,
  UnprocessableRequestError,
} from '../shared/errors.js';
import { clientPrecondition, optimisticUpdate } from '../shared/optimistic-update.js';
import type { DeviceStateStore } from '../telemetry/ports.js';
import { deviceConnectionString, type SymmetricKeys } from './keys.js';
import { applyMergePatch } from './merge-patch.js';
import { metadataSizeProblems, reservedKeyProblems } from './metadata.js';
import type { DeviceIdentity, IdentityStatus, IdentityStore } from './ports.js';
import {
  claimCatalogEntry,
  deleteOwnCatalogEntry,
  type DeviceQuery,
  type DeviceCatalog,
  type VersionedDeviceRecord,
} from './catalog.js';
import { validateDesiredPatch, type DeviceTwin, type TwinStore } from './twin.js';

/** Where identities left behind by a failed registration are written down for reconciliation. */
export interface OrphanLog {
  record(orphan: { deviceId: string; reason: string; at: string }): Promise<void>;
}

export interface ProvisioningDeps {
  identities: IdentityStore;
  twins: TwinStore;
  catalog: DeviceCatalog;
  stateStore: DeviceStateStore;
  orphans: OrphanLog;
  /** IoT Hub host name used in device connection strings (e.g. `myhub.azure-devices.net`). */
  hostName: string;
  /** Largest accepted metadata object, in bytes of JSON. */
  maxMetadataBytes: number;
  now?: () => Date;
}

/** What a device (or its installer) needs to connect: shown only at registration and credential reset. */
export interface Credentials {
  id: string;
  keys: SymmetricKeys;
  connectionString: string;
}

/** The provisioning gestures of seed 002 §3.4 over the identity store and the device catalog. */
export class ProvisioningService {
  /** Credential resets with generated keys in flight in this instance, by device id. */
  private readonly resets = new Map<string, Promise<Credentials>>();

  constructor(private readonly deps: ProvisioningDeps) {}

  /**
   * Register: identity first (it enforces uniqueness and holds the keys), catalog second. If the device catalog
   * write fails, the identity is deleted again; if that fails too, it is recorded as an orphan (ADR 0005).
   * An identity that exists without a catalog entry is adopted (see `adopt`).
   */
  async register(input: {
    id?: string;
    keys?: SymmetricKeys;
    metadata?: Record<string, unknown>;
  }): Promise<Credentials & { record: VersionedDeviceRecord }> {
    const id = assertDeviceId(input.id ?? randomUUID());
    const metadata = this.checkMetadata(this.checkReserved(input.metadata ?? {}));
    let identity: DeviceIdentity;
    try {
      identity = await this.deps.identities.create(id, input.keys);
    } catch (error) {
      if (!(error instanceof DeviceAlreadyExistsError)) throw error;
      return this.adopt(id, metadata, input.keys);
    }
    const now = this.now();
    try {
      // The identity was just created here, so the catalog entry is ours only if this call wrote it.
      const record = await claimCatalogEntry(
        this.deps.catalog,
        { id, status: 'enabled', metadata, createdAt: now, updatedAt: now },
        `register-${randomUUID()}`,
      );
      return { ...this.credentials(id, identity.keys), record };
    } catch (catalogError) {
      try {
        await this.deps.identities.delete(id);
      } catch {
        const recorded = await this.deps.orphans
          .record({ deviceId: id, reason: 'catalog write failed; identity delete failed', at: now })
          .then(() => true)
          .catch(() => false);
        throw new ProvisioningInconsistencyError(
          `Device '${id}' has an identity but no catalog entry; ${recorded ? 'recorded for reconciliation' : 'NOT recorded: reconcile by hand'}.`,
          id,
          recorded,
        );
      }
      throw catalogError;
    }
  }

  /**
   * Self-healing (issue 13, ADR 0005): an identity without a catalog entry (a failed compensation, data deleted
   * by hand, a lost local catalog) is adopted by the next registration of its id. The catalog entry is written
   * first: it is the check that no entry uses the id, and it claims the id, so of two concurrent registrations
   * one wins and the other gets 409. Then the keys are re-issued (the given ones, or fresh) and the identity is
   * enabled: whoever held the old keys loses access, and the caller gets credentials it can use, shown this once.
   */
  private async adopt(
    id: string,
    metadata: Record<string, unknown>,
    keys?: SymmetricKeys,
  ): Promise<Credentials & { record: VersionedDeviceRecord }> {
    const now = this.now();
    // A plain create (409 when any entry exists, whoever wrote it), tagged as ours so that undoing it can only
    // ever remove this entry.
    const token = `register-${randomUUID()}`;
    const record = await this.deps.catalog.create({
      id,
      status: 'enabled',
      metadata,
      createdAt: now,
      updatedAt: now,
      creationToken: token,
    });
    try {
      const identity = await this.deps.identities.regenerateKeys(id, keys);
      if (identity.status !== 'enabled') await this.deps.identities.setStatus(id, 'enabled');
      return { ...this.credentials(id, identity.keys), record };
    } catch (error) {
      // E.g. the identity was deleted meanwhile: give the id back rather than leave an entry without identity.
      await deleteOwnCatalogEntry(this.deps.catalog, id, token).catch(() => false);
      throw error;
    }
  }

  async get(id: string): Promise<VersionedDeviceRecord> {
    const record = await this.deps.catalog.get(assertDeviceId(id));
    if (!record) throw new DeviceNotFoundError(id);
    return record;
  }

  list(query: DeviceQuery) {
    return this.deps.catalog.query(query);
  }

  /**
   * Update: a JSON merge patch (RFC 7396) of the metadata. With the client's `ifMatch` (an ETag, not `*`) the patch
   * is applied only to that version (else PreconditionFailedError, 412); without it, or with `*` (any current
   * entry), to whatever is there: a race lost to another writer is re-read and re-applied (optimisticUpdate).
   */
  async update(id: string, patch: Record<string, unknown>, ifMatch?: string): Promise<VersionedDeviceRecord> {
    this.checkReserved(patch);
    const clientEtag = ifMatch === '*' ? undefined : ifMatch;
    const write = async () => {
      const current = await this.get(id);
      const metadata = this.checkMetadata(
        applyMergePatch(current.metadata, patch) as Record<string, unknown>,
      );
      return this.deps.catalog.replace(
        { ...current, metadata, updatedAt: this.now() },
        clientEtag ?? current.etag,
      );
    };
    if (clientEtag === undefined) return optimisticUpdate(`Device '${id}'`, write);
    return write().catch((error: unknown) => {
      throw clientPrecondition(error, clientEtag, `Device '${id}'`);
    });
  }

  /** Activate / Deactivate: the identity store first, so a deactivated device is refused at once. */
  async setStatus(
    id: string,
    status: IdentityStatus,
    metadataPatch?: Record<string, unknown>,
    ifMatch?: string,
  ): Promise<VersionedDeviceRecord> {
    // Everything is validated before the first write: a rejected request changes nothing (issue 12, item 7).
    this.checkReserved(metadataPatch);
    const merged = (current: VersionedDeviceRecord) =>
      metadataPatch
        ? this.checkMetadata(applyMergePatch(current.metadata, metadataPatch) as Record<string, unknown>)
        : current.metadata;
    const before = await this.get(id);
    merged(before);
    const clientEtag = ifMatch === '*' ? undefined : ifMatch;
    if (clientEtag !== undefined && clientEtag !== before.etag)
      throw new PreconditionFailedError(`Device '${id}' was changed since the version in If-Match.`);
    const previous = await this.deps.identities.get(id);
    await this.deps.identities.setStatus(id, status);
    // The catalog write is guarded by the ETag it read, so a concurrent metadata update is never lost.
    const write = async () => {
      const current = await this.get(id);
      if (clientEtag !== undefined && current.etag !== clientEtag)
        throw new PreconditionFailedError(`Device '${id}' was changed since the version in If-Match.`);
      let metadata: Record<string, unknown>;
      try {
        metadata = merged(current);
      } catch (invalid) {
        // A concurrent update made the merged metadata too large: the request is refused, so the identity's
        // status goes back to what it was.
        if (previous) await this.deps.identities.setStatus(id, previous.status);
        throw invalid;
      }
      return this.deps.catalog.replace({ ...current, status, metadata, updatedAt: this.now() }, current.etag);
    };
    if (clientEtag === undefined) return optimisticUpdate(`Device '${id}'`, write);
    // The client's version: one conditional write; a change since (even ours) is the client's 412, and the
    // identity's status goes back to what it was, as for any refused request.
    return write().catch(async (error: unknown) => {
      const refused = clientPrecondition(error, clientEtag, `Device '${id}'`);
      if (refused instanceof PreconditionFailedError && previous)
        await this.deps.identities.setStatus(id, previous.status);
      throw refused;
    });
  }

  /**
   * Reset credentials. Resets of one device are serialized on the identity's ETag: one that loses the race to
   * another reset is refused (CredentialsResetConflictError, 409) instead of replacing the winner's fresh keys,
   * so no answer carries keys that were already dead. Resets with generated keys that overlap in this instance
   * join the one in flight and answer with its keys: every 200 of a burst carries the same, working pair.
   */
  resetCredentials(id: string, keys?: SymmetricKeys): Promise<Credentials> {
    if (keys) return this.reset(id, keys);
    const inFlight = this.resets.get(id);
    if (inFlight) return inFlight;
    const flight = this.reset(id).finally(() => this.resets.delete(id));
    this.resets.set(id, flight);
    return flight;
  }

  private async reset(id: string, keys?: SymmetricKeys): Promise<Credentials> {
    await this.get(id);
    const identity = await this.deps.identities.regenerateKeys(id, keys);
    return this.credentials(id, identity.keys);
  }

  /**
   * Unregister: the catalog entry first, then the identity, then optionally last-known state. In this order an
   * unregister that stops half-way leaves an identity without an entry (the next register is refused with 409
   * and a repeated DELETE finishes the job), never an entry without an identity that a later registration
   * could take for its own.
   */
  async unregister(id: string, purgeState: boolean, ifMatch?: string): Promise<void> {
    assertDeviceId(id);
    if (ifMatch !== undefined && ifMatch !== '*' && (await this.get(id)).etag !== ifMatch) {
      // Checked against the entry read just before the delete (the catalog's delete takes no condition).
      throw new PreconditionFailedError(`Device '${id}' was changed since the version in If-Match.`);
    }
    const hadRecord = await this.deps.catalog.delete(id);
    const hadIdentity = await this.deps.identities.delete(id);
    if (purgeState) await this.deps.stateStore.delete(id);
    if (!hadIdentity && !hadRecord) throw new DeviceNotFoundError(id);
  }

  async getTwin(id: string): Promise<DeviceTwin> {
    const twin = await this.deps.twins.get(assertDeviceId(id));
    if (!twin) throw new DeviceNotFoundError(id);
    return twin;
  }

  /** Patches desired properties after checking IoT Hub's twin limits (nothing is sent when they are broken). */
  patchTwin(id: string, desired: Record<string, unknown>, ifMatch?: string): Promise<DeviceTwin> {
    assertDeviceId(id);
    validateDesiredPatch(desired);
    return this.deps.twins.patchDesired(id, desired, ifMatch);
  }

  private credentials(id: string, keys: SymmetricKeys): Credentials {
    return {
      id,
      keys,
      connectionString: deviceConnectionString(this.deps.hostName, id, keys),
    };
  }

  /**
   * Refuses reserved keys in what a caller sends (the HTTP schema already does; this guards other callers).
   * Only the caller's input is checked, so a record stored before the rule existed can still be changed.
   */
  private checkReserved<T>(input: T): T {
    const reserved = reservedKeyProblems(input, 'metadata');
    if (reserved.length > 0) throw new UnprocessableRequestError('Reserved metadata key.', reserved);
    return input;
  }

  private checkMetadata(metadata: Record<string, unknown>): Record<string, unknown> {
    const tooLarge = metadataSizeProblems(metadata, this.deps.maxMetadataBytes);
    if (tooLarge.length > 0) throw new UnprocessableRequestError('Metadata too large.', tooLarge);
    return metadata;
  }

  private now(): string {
    return (this.deps.now?.() ?? new Date()).toISOString();
  }
}
