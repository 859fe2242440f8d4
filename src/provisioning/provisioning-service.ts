import { randomUUID } from 'node:crypto';
import { assertDeviceId } from '../shared/device-id.js';
import {
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  PreconditionFailedError,
  ProvisioningInconsistencyError,
  UnprocessableRequestError,
} from '../shared/errors.js';
import type { DeviceStateStore } from '../telemetry/ports.js';
import type { SymmetricKeys } from './keys.js';
import { applyMergePatch } from './merge-patch.js';
import type { DeviceIdentity, IdentityStatus, IdentityStore } from './ports.js';
import type { DeviceQuery, DeviceRegistry, VersionedDeviceRecord } from './registry.js';
import { validateDesiredPatch, type DeviceTwin, type TwinStore } from './twin.js';

/** Where identities left behind by a failed registration are written down for reconciliation. */
export interface OrphanLog {
  record(orphan: { deviceId: string; reason: string; at: string }): Promise<void>;
}

export interface ProvisioningDeps {
  identities: IdentityStore;
  twins: TwinStore;
  registry: DeviceRegistry;
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

/** The provisioning gestures of seed 002 §3.4 over the identity store and the registry. */
export class ProvisioningService {
  constructor(private readonly deps: ProvisioningDeps) {}

  /**
   * Register: identity first (it enforces uniqueness and holds the keys), registry second. If the registry
   * write fails, the identity is deleted again; if that fails too, it is recorded as an orphan (ADR 0005).
   * An identity that exists without a registry entry is adopted (see `adopt`).
   */
  async register(input: {
    id?: string;
    keys?: SymmetricKeys;
    metadata?: Record<string, unknown>;
  }): Promise<Credentials & { record: VersionedDeviceRecord }> {
    const id = assertDeviceId(input.id ?? randomUUID());
    const metadata = this.checkMetadata(input.metadata ?? {});
    let identity: DeviceIdentity;
    try {
      identity = await this.deps.identities.create(id, input.keys);
    } catch (error) {
      if (!(error instanceof DeviceAlreadyExistsError)) throw error;
      return this.adopt(id, metadata, input.keys);
    }
    const now = this.now();
    try {
      const record = await this.deps.registry.create({
        id,
        status: 'enabled',
        metadata,
        createdAt: now,
        updatedAt: now,
      });
      return { ...this.credentials(id, identity.keys), record };
    } catch (registryError) {
      try {
        await this.deps.identities.delete(id);
      } catch {
        const recorded = await this.deps.orphans
          .record({ deviceId: id, reason: 'registry write failed; identity delete failed', at: now })
          .then(() => true)
          .catch(() => false);
        throw new ProvisioningInconsistencyError(
          `Device '${id}' has an identity but no registry entry; ${recorded ? 'recorded for reconciliation' : 'NOT recorded: reconcile by hand'}.`,
          id,
          recorded,
        );
      }
      throw registryError;
    }
  }

  /**
   * Self-healing (issue 13, ADR 0005): an identity without a registry entry (a failed compensation, data deleted
   * by hand, a lost local registry) is adopted by the next registration of its id. The registry entry is written
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
    const record = await this.deps.registry.create({
      id,
      status: 'enabled',
      metadata,
      createdAt: now,
      updatedAt: now,
    });
    try {
      const identity = await this.deps.identities.regenerateKeys(id, keys);
      if (identity.status !== 'enabled') await this.deps.identities.setStatus(id, 'enabled');
      return { ...this.credentials(id, identity.keys), record };
    } catch (error) {
      // E.g. the identity was deleted meanwhile: give the id back rather than leave an entry without identity.
      await this.deps.registry.delete(id).catch(() => false);
      throw error;
    }
  }

  async get(id: string): Promise<VersionedDeviceRecord> {
    const record = await this.deps.registry.get(assertDeviceId(id));
    if (!record) throw new DeviceNotFoundError(id);
    return record;
  }

  list(query: DeviceQuery) {
    return this.deps.registry.query(query);
  }

  /** Update: a JSON merge patch (RFC 7396) of the metadata, optionally guarded by an ETag. */
  async update(id: string, patch: Record<string, unknown>, ifMatch?: string): Promise<VersionedDeviceRecord> {
    // Without If-Match the caller asked for "apply to whatever is there": re-read and re-apply on a race.
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(id);
      const metadata = this.checkMetadata(
        applyMergePatch(current.metadata, patch) as Record<string, unknown>,
      );
      try {
        return await this.deps.registry.replace(
          { ...current, metadata, updatedAt: this.now() },
          ifMatch ?? current.etag,
        );
      } catch (error) {
        if (ifMatch !== undefined || !(error instanceof PreconditionFailedError) || attempt >= 5) throw error;
      }
    }
  }

  /** Activate / Deactivate: the identity store first, so a deactivated device is refused at once. */
  async setStatus(
    id: string,
    status: IdentityStatus,
    metadataPatch?: Record<string, unknown>,
  ): Promise<VersionedDeviceRecord> {
    await this.get(id);
    await this.deps.identities.setStatus(id, status);
    // The registry write is guarded by the ETag it read, so a concurrent metadata update is never lost.
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(id);
      const metadata = metadataPatch
        ? this.checkMetadata(applyMergePatch(current.metadata, metadataPatch) as Record<string, unknown>)
        : current.metadata;
      try {
        return await this.deps.registry.replace(
          { ...current, status, metadata, updatedAt: this.now() },
          current.etag,
        );
      } catch (error) {
        if (!(error instanceof PreconditionFailedError) || attempt >= 5) throw error;
      }
    }
  }

  async resetCredentials(id: string, keys?: SymmetricKeys): Promise<Credentials> {
    await this.get(id);
    const identity = await this.deps.identities.regenerateKeys(id, keys);
    return this.credentials(id, identity.keys);
  }

  /** Unregister: identity first (access ends at once), then the registry, then optionally last-known state. */
  async unregister(id: string, purgeState: boolean): Promise<void> {
    assertDeviceId(id);
    const hadIdentity = await this.deps.identities.delete(id);
    const hadRecord = await this.deps.registry.delete(id);
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
      connectionString: `HostName=${this.deps.hostName};DeviceId=${id};SharedAccessKey=${keys.primaryKey}`,
    };
  }

  private checkMetadata(metadata: Record<string, unknown>): Record<string, unknown> {
    const bytes = Buffer.byteLength(JSON.stringify(metadata), 'utf8');
    if (bytes > this.deps.maxMetadataBytes) {
      throw new UnprocessableRequestError('Metadata too large.', [
        { path: 'metadata', message: `is ${bytes} bytes; at most ${this.deps.maxMetadataBytes}` },
      ]);
    }
    return metadata;
  }

  private now(): string {
    return (this.deps.now?.() ?? new Date()).toISOString();
  }
}
