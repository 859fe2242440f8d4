/**
 * Reconciliation of the identity store (Azurite Tables) and the device catalog (local Cosmos DB server) — issue 13,
 * item 3: what diverged is listed without changing anything, and `fix` repairs it so that every device has both.
 */
import { describe, expect, it } from 'vitest';
import { createAdapters } from '../../../src/infra/adapters.js';
import { TableIdentityStore } from '../../../src/infra/tables/table-identity-store.js';
import { reconcile, type ReconcileStores } from '../../../src/provisioning/reconcile.js';
import { testConfig } from '../../support/local-env.js';

// Each file gets its own database, but the identity table is shared: use a table of this file's own.
const config = testConfig({ IdentityTableName: `ids${Date.now()}` });
const adapters = createAdapters(config);
const stores = (): ReconcileStores => {
  if (!(adapters.identities instanceof TableIdentityStore))
    throw new Error('expected the table identity store');
  return {
    identities: adapters.identities,
    catalog: adapters.catalog,
    orphans: adapters.orphans,
    identityListing: adapters.identities,
  };
};
const at = '2026-12-01T10:00:00.000Z';

describe('reconcile: identity store × catalog × recorded orphans', () => {
  it('lists what diverges read-only, repairs it with fix, and then finds nothing', async () => {
    // A consistent device, a ghost (identity only), an entry without identity, and a recorded orphan.
    await adapters.identities.create('ok-1');
    await adapters.catalog.create({
      id: 'ok-1',
      status: 'enabled',
      metadata: {},
      createdAt: at,
      updatedAt: at,
    });
    const ghost = await adapters.identities.create('ghost-1');
    await adapters.catalog.create({
      id: 'entry-1',
      status: 'disabled',
      metadata: { site: 'lab' },
      createdAt: at,
      updatedAt: at,
    });
    await adapters.identities.create('orphan-1');
    await adapters.orphans.record({ deviceId: 'orphan-1', reason: 'catalog write failed', at });

    const before = await reconcile(stores(), { fix: false });
    expect(before.identitiesWithoutEntry).toEqual(['ghost-1', 'orphan-1']);
    expect(before.entriesWithoutIdentity).toEqual(['entry-1']);
    expect(before.orphans.map((o) => [o.deviceId, o.now])).toEqual([['orphan-1', 'identity only']]);
    expect(before.actions).toEqual([]);
    // Read-only: nothing changed.
    expect(await adapters.catalog.get('ghost-1')).toBeUndefined();
    expect(await adapters.identities.get('entry-1')).toBeUndefined();

    const fixed = await reconcile(stores(), { fix: true });
    expect(fixed.actions.length).toBeGreaterThanOrEqual(4);
    expect(await adapters.catalog.get('ghost-1')).toMatchObject({ status: 'enabled', metadata: {} });
    // The ghost keeps its keys: a device in the field keeps working.
    expect((await adapters.identities.get('ghost-1'))?.keys).toEqual(ghost.keys);
    expect(await adapters.identities.get('entry-1')).toMatchObject({ status: 'disabled' });
    expect(JSON.stringify(fixed)).not.toContain(ghost.keys.primaryKey);

    const after = await reconcile(stores(), { fix: false });
    expect(after).toEqual({
      identitiesWithoutEntry: [],
      entriesWithoutIdentity: [],
      orphans: [],
      actions: [],
    });
  });
});
