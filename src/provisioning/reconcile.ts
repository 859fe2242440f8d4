/**
 * Reconciliation of the two stores a device lives in (ADR 0005): identities without a catalog entry,
 * catalog entries without an identity, and the orphans recorded in the `reconciliation` container. Read-only
 * unless asked to fix; `npm run reconcile` (tools/reconcile.ts) is its command line.
 */
import { DeviceAlreadyExistsError } from '../shared/errors.js';
import type { IdentityStore } from './ports.js';
import type { DeviceCatalog } from './catalog.js';

/** An orphan as the `reconciliation` container records it (ProvisioningService.register's last resort). */
export interface OrphanRecord {
  /** The record's own id (not the device's). */
  id: string;
  deviceId: string;
  reason: string;
  at: string;
}

/** The recorded orphans: read them, and remove one once it is resolved. */
export interface OrphanRecords {
  list(): AsyncIterable<OrphanRecord>;
  remove(id: string): Promise<void>;
}

/** Every identity's device id, as the identity store lists them. */
export interface IdentityListing {
  ids(): AsyncIterable<string>;
}

export interface ReconcileStores {
  identities: IdentityStore;
  catalog: DeviceCatalog;
  orphans: OrphanRecords;
  /** Absent when the identity store cannot be listed here: only the recorded orphans are checked then. */
  identityListing?: IdentityListing;
}

export interface ReconcileReport {
  /** Devices that can connect but are not in the device catalog (ghosts); undefined when identities were not listed. */
  identitiesWithoutEntry?: string[];
  entriesWithoutIdentity: string[];
  /** The recorded orphans, each with what the stores say now. */
  orphans: (OrphanRecord & { now: 'identity only' | 'catalog only' | 'consistent' | 'gone' })[];
  /** What `fix` did, one line each. */
  actions: string[];
}

/**
 * Compares the stores and, with `fix`, repairs them: an identity without an entry gets one (status from the
 * identity, empty metadata; its keys are kept, so a device in the field keeps working); an entry without an
 * identity gets one with fresh keys that nobody is shown (reset the device's credentials to give it keys); an
 * orphan record whose device is now consistent (or gone from both stores) is removed.
 */
export async function reconcile(
  stores: ReconcileStores,
  options: { fix: boolean; now?: () => Date },
): Promise<ReconcileReport> {
  const now = () => (options.now?.() ?? new Date()).toISOString();
  const entries = await catalogIds(stores.catalog);
  const actions: string[] = [];
  let identitiesWithoutEntry: string[] | undefined;
  const entriesWithoutIdentity: string[] = [];
  if (stores.identityListing) {
    const identities = new Set<string>();
    for await (const id of stores.identityListing.ids()) identities.add(id);
    identitiesWithoutEntry = [...identities].filter((id) => !entries.has(id)).sort();
    for (const id of entries) if (!identities.has(id)) entriesWithoutIdentity.push(id);
    entriesWithoutIdentity.sort();
  }
  if (options.fix) {
    for (const id of identitiesWithoutEntry ?? []) actions.push(await addEntry(stores, id, now()));
    for (const id of entriesWithoutIdentity) actions.push(await addIdentity(stores, id));
  }
  const orphans: ReconcileReport['orphans'] = [];
  for await (const orphan of stores.orphans.list()) {
    let state = await stateOf(stores, orphan.deviceId);
    if (options.fix && state === 'identity only') {
      actions.push(await addEntry(stores, orphan.deviceId, now()));
      state = await stateOf(stores, orphan.deviceId);
    }
    if (options.fix && (state === 'consistent' || state === 'gone')) {
      await stores.orphans.remove(orphan.id);
      actions.push(`removed the orphan record of '${orphan.deviceId}' (${state})`);
    }
    orphans.push({ ...orphan, now: state });
  }
  return {
    ...(identitiesWithoutEntry ? { identitiesWithoutEntry } : {}),
    entriesWithoutIdentity,
    orphans,
    actions,
  };
}

async function catalogIds(catalog: DeviceCatalog): Promise<Set<string>> {
  const ids = new Set<string>();
  let continuationToken: string | undefined;
  do {
    const page = await catalog.query({ top: 1000, ...(continuationToken ? { continuationToken } : {}) });
    for (const item of page.items) ids.add(item.id);
    continuationToken = page.continuationToken;
  } while (continuationToken);
  return ids;
}

async function stateOf(stores: ReconcileStores, deviceId: string) {
  const [identity, entry] = await Promise.all([
    stores.identities.get(deviceId),
    stores.catalog.get(deviceId),
  ]);
  if (identity && entry) return 'consistent' as const;
  if (identity) return 'identity only' as const;
  return entry ? ('catalog only' as const) : ('gone' as const);
}

async function addEntry(stores: ReconcileStores, id: string, at: string): Promise<string> {
  const identity = await stores.identities.get(id);
  if (!identity) return `'${id}': its identity is gone meanwhile; nothing to do`;
  try {
    await stores.catalog.create({ id, status: identity.status, metadata: {}, createdAt: at, updatedAt: at });
    return `'${id}': catalog entry created (status ${identity.status}, empty metadata; keys unchanged)`;
  } catch (error) {
    if (error instanceof DeviceAlreadyExistsError) return `'${id}': registered meanwhile; nothing to do`;
    throw error;
  }
}

async function addIdentity(stores: ReconcileStores, id: string): Promise<string> {
  const entry = await stores.catalog.get(id);
  if (!entry) return `'${id}': its catalog entry is gone meanwhile; nothing to do`;
  try {
    await stores.identities.create(id, undefined, entry.status);
    return `'${id}': identity created (status ${entry.status}) with new keys: POST /api/devices/${encodeURIComponent(id)}/reset-credentials to get them`;
  } catch (error) {
    if (error instanceof DeviceAlreadyExistsError)
      return `'${id}': identity created meanwhile; nothing to do`;
    throw error;
  }
}
