import type { Container, SqlParameter } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import {
  canTransition,
  claimedAlarm,
  isNotificationDue,
  openAlarm,
  repeatAlarm,
  settledAlarm,
  type Alarm,
  type AlarmQuery,
  type AlarmStore,
  type NotificationSettlement,
} from '../../alerts/alarms.js';
import type { Anomaly } from '../../alerts/anomaly-records.js';
import {
  AlarmNotFoundError,
  AlarmRejectedError,
  ConcurrentUpdateError,
  InvalidTransitionError,
} from '../../shared/errors.js';
import { errorText } from '../../shared/error-text.js';
import { optimisticUpdate } from '../../shared/optimistic-update.js';
import { toStorageKey } from '../storage-keys.js';
import {
  isConflict,
  isNotFound,
  isPreconditionFailed,
  isRefused,
  refusalReason,
  translateCosmosError,
} from './errors.js';
import { fetchPage } from './cosmos-paging.js';

/**
 * `unlinked`: created, and not yet pointed at by its (device, rule) slot. Such an alarm is not listed, not due
 * and not claimable, so the alarm of a writer that loses the race for the slot is never sent, even between its
 * creation and its withdrawal, or when the withdrawal never happens (the process died). Whoever reaches it
 * through its slot (a repeat, a replay) links it.
 */
type StoredAlarm = Alarm & { type: 'alarm'; _etag?: string; unlinked?: true };
/** Points at the alarm currently collecting anomalies of one (device, rule): one active alarm per pair. */
interface Slot {
  id: string;
  type: 'slot';
  alarmId: string;
  _etag?: string;
}
/** Most pages read for one due list: bounds the loop whatever the service answers. */
const DUE_MAX_PAGES = 100;
/** Alarms that people can see: created and pointed at by their slot (see `unlinked`). */
const LINKED = 'NOT IS_DEFINED(c.unlinked)';

/**
 * AlarmStore on a Cosmos DB container (`alarms`, partition key `/id`): alarm documents plus one slot per
 * (device, rule). Every write of an existing document is ETag-guarded; 429/503/timeouts become
 * ThrottledError / ServiceUnavailableError.
 */
export class CosmosAlarmStore implements AlarmStore {
  constructor(
    private readonly container: () => Promise<Container>,
    private readonly now: () => Date = () => new Date(),
    /** Items per page of the due-notifications query (Cosmos DB's default page size). */
    private readonly duePageSize = 100,
  ) {}

  async record(
    anomaly: Anomaly,
    options: { cooldownMs?: number; now?: string } = {},
  ): Promise<{ alarm: Alarm; outcome: 'opened' | 'repeated' | 'duplicate' }> {
    const pair = `${toStorageKey(anomaly.deviceId)}|${toStorageKey(anomaly.rule)}`;
    const slotId = `slot|${pair}`;
    const now = options.now ?? this.iso();
    const lost = () =>
      new ConcurrentUpdateError(`Alarm for ${anomaly.deviceId}/${anomaly.rule} changed concurrently.`);
    return optimisticUpdate(`Alarm for ${anomaly.deviceId}/${anomaly.rule}`, async () => {
      const slot = await this.read<Slot>(slotId);
      const current = slot ? await this.read<StoredAlarm>(slot.alarmId) : undefined;
      if (current && current.status !== 'closed') {
        // Reached through its slot: linked from now on (a writer that pointed the slot may have died before).
        const next = repeatAlarm(strip(current), anomaly, now, options.cooldownMs);
        if (!next) return { alarm: await this.link(current), outcome: 'duplicate' };
        if (await this.replace({ ...next, type: 'alarm' }, current._etag))
          return { alarm: next, outcome: 'repeated' };
        throw lost();
      }
      // A replay of an anomaly that a since-closed alarm already counted must not reopen anything.
      if (current?.windowEnds.includes(anomaly.windowEnd))
        return { alarm: strip(current), outcome: 'duplicate' };

      const alarm = openAlarm(`${pair}|${anomaly.windowEnd}`, anomaly, now);
      const created = await this.create<StoredAlarm>({ ...alarm, type: 'alarm', unlinked: true });
      if (!created) {
        // The opening anomaly itself, replayed.
        const existing = await this.read<StoredAlarm>(alarm.id);
        if (!existing) throw lost();
        // The earlier attempt may have stopped (crash, lost answer) before pointing the slot at its alarm: point
        // it now, or the next anomaly of this pair would open a second alarm.
        if (
          existing.status !== 'closed' &&
          slot?.alarmId !== existing.id &&
          !(await this.point(slotId, slot, existing.id))
        )
          throw lost();
        return { alarm: await this.link(existing), outcome: 'duplicate' };
      }
      if (await this.point(slotId, slot, alarm.id))
        return { alarm: await this.link(created), outcome: 'opened' };
      // Another writer opened an alarm for this pair meanwhile: withdraw ours and fold into theirs. Ours is
      // unlinked, so a withdrawal that fails leaves a document nobody lists, claims or sends.
      try {
        await this.delete(alarm.id);
      } catch {
        // Inert (see `unlinked`); the anomaly still folds into the other writer's alarm below.
      }
      throw lost();
    });
  }

  /** Points the (device, rule) slot at `alarmId`, under the slot's ETag; false when another writer got there first. */
  private point(slotId: string, slot: Slot | undefined, alarmId: string): Promise<boolean> {
    return slot
      ? this.replace(slotDoc(slotId, alarmId), slot._etag)
      : this.create(slotDoc(slotId, alarmId)).then((created) => created !== undefined);
  }

  async get(id: string): Promise<Alarm | undefined> {
    const stored = await this.read<StoredAlarm>(id);
    return stored?.type === 'alarm' && !stored.unlinked ? strip(stored) : undefined;
  }

  async list(query: AlarmQuery): Promise<{ items: Alarm[]; continuationToken?: string }> {
    const conditions = ["c.type = 'alarm'", LINKED];
    const parameters: SqlParameter[] = [];
    if (query.deviceId !== undefined) {
      conditions.push('c.deviceId = @deviceId');
      parameters.push({ name: '@deviceId', value: query.deviceId });
    }
    if (query.status !== undefined) {
      conditions.push('c.status = @status');
      parameters.push({ name: '@status', value: query.status });
    }
    if (query.notification !== undefined) {
      conditions.push('c.notification = @notification');
      parameters.push({ name: '@notification', value: query.notification });
    }
    const page = await this.call((c) =>
      fetchPage<StoredAlarm>(
        c,
        { query: `SELECT * FROM c WHERE ${conditions.join(' AND ')} ORDER BY c.id`, parameters },
        query,
      ),
    );
    return { ...page, items: page.items.map(strip) };
  }

  transition(id: string, to: 'acknowledged' | 'closed'): Promise<Alarm> {
    return this.update(id, (alarm) => {
      if (!canTransition(alarm.status, to)) {
        throw new InvalidTransitionError(`Alarm '${id}' is ${alarm.status}; it cannot become ${to}.`);
      }
      const at = this.iso();
      return {
        ...alarm,
        status: to,
        updatedAt: at,
        ...(to === 'acknowledged' ? { acknowledgedAt: at } : { closedAt: at }),
      };
    });
  }

  async listDueNotifications(now: string, limit: number): Promise<Alarm[]> {
    // Built from constants and parameters only; the due test is repeated in code (isNotificationDue). Every
    // alarm has `pendingSince` (set when it opens), so ORDER BY drops none.
    const query =
      `SELECT * FROM c WHERE c.type = 'alarm' AND ${LINKED} AND (` +
      "(c.notification = 'pending' AND (NOT IS_DEFINED(c.nextAttemptAt) OR c.nextAttemptAt <= @now)) OR " +
      "(c.notification = 'notifying' AND c.notifyingUntil <= @now)) ORDER BY c.pendingSince";
    const due: Alarm[] = [];
    await this.call(async (c) => {
      const pages = c.items.query<StoredAlarm>(
        { query, parameters: [{ name: '@now', value: now }] },
        { maxItemCount: Math.max(1, Math.min(limit, this.duePageSize)) },
      );
      // A cross-partition query may answer an empty or short page while other partitions still hold matches
      // (azure-sdk-for-js#23771): read on until the limit or the end.
      for (let page = 0; page < DUE_MAX_PAGES && due.length < limit && pages.hasMoreResults(); page++) {
        const { resources } = await pages.fetchNext();
        for (const stored of resources) {
          const alarm = strip(stored);
          if (!stored.unlinked && isNotificationDue(alarm, now) && due.length < limit) due.push(alarm);
        }
      }
    });
    return due.sort((a, b) => (a.pendingSince ?? a.createdAt).localeCompare(b.pendingSince ?? b.createdAt));
  }

  async claimNotification(
    id: string,
    now: string,
    until: string,
  ): Promise<{ alarm: Alarm; lease: string } | undefined> {
    const lease = randomUUID();
    const claimed = await this.update(
      id,
      (alarm) => (isNotificationDue(alarm, now) ? claimedAlarm(alarm, lease, until) : undefined),
      { missing: 'undefined' },
    );
    return claimed ? { alarm: claimed, lease } : undefined;
  }

  async settleNotification(
    id: string,
    lease: string,
    settlement: NotificationSettlement,
    options: { signal?: AbortSignal } = {},
  ): Promise<boolean> {
    const settled = await this.update(
      id,
      (alarm) => (alarm.notifyingLease === lease ? settledAlarm(alarm, settlement) : undefined),
      { missing: 'undefined', signal: options.signal },
    );
    return settled !== undefined;
  }

  /**
   * Read, change, replace with If-Match; again when another writer got there first. `change` returning
   * undefined means "leave it": the result is undefined. A missing alarm throws AlarmNotFoundError unless
   * `missing` is 'undefined'.
   */
  private async update(id: string, change: (alarm: Alarm) => Alarm): Promise<Alarm>;
  private async update(
    id: string,
    change: (alarm: Alarm) => Alarm | undefined,
    options: { missing: 'undefined'; signal?: AbortSignal },
  ): Promise<Alarm | undefined>;
  private async update(
    id: string,
    change: (alarm: Alarm) => Alarm | undefined,
    options?: { missing: 'undefined'; signal?: AbortSignal },
  ): Promise<Alarm | undefined> {
    const signal = options?.signal;
    return optimisticUpdate(
      `Alarm '${id}'`,
      async () => {
        const current = await this.read<StoredAlarm>(id, signal);
        if (current?.type !== 'alarm' || current.unlinked) {
          if (options?.missing === 'undefined') return undefined;
          throw new AlarmNotFoundError(id);
        }
        const next = change(strip(current));
        if (!next) return undefined;
        if (await this.replace({ ...next, type: 'alarm' }, current._etag, signal)) return next;
        throw new ConcurrentUpdateError(`Alarm '${id}' changed concurrently.`);
      },
      signal ? { signal } : {},
    );
  }

  /**
   * Clears `unlinked` once the alarm's slot points at it (the caller reached it through the slot, or has just
   * pointed the slot at it); the alarm as stored.
   */
  private link(stored: StoredAlarm): Promise<Alarm> {
    return optimisticUpdate(`Alarm '${stored.id}'`, async (attempt) => {
      const current = attempt === 1 ? stored : await this.read<StoredAlarm>(stored.id);
      if (!current) throw new AlarmNotFoundError(stored.id);
      if (!current.unlinked) return strip(current);
      const linked = strip(current);
      if (await this.replace({ ...linked, type: 'alarm' }, current._etag)) return linked;
      throw new ConcurrentUpdateError(`Alarm '${stored.id}' changed concurrently.`);
    });
  }

  private read<T extends { id: string }>(id: string, signal?: AbortSignal): Promise<T | undefined> {
    return this.call(async (c) => {
      try {
        const { resource } = await c.item(id, id).read<T>(signal ? { abortSignal: signal } : {});
        return resource;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    }, signal);
  }

  /** The document as created (with its ETag); undefined when the id is taken (409). */
  private create<T extends { id: string; type: string }>(doc: T): Promise<T | undefined> {
    return this.call(async (c) => {
      try {
        const { resource } = await c.items.create(doc);
        return { ...doc, _etag: resource?._etag };
      } catch (error) {
        if (isConflict(error)) return undefined;
        throw error;
      }
    });
  }

  /** false when the document changed since `etag` (412) or vanished (404). */
  private replace(
    doc: { id: string; type: string },
    etag: string | undefined,
    signal?: AbortSignal,
  ): Promise<boolean> {
    return this.call(async (c) => {
      try {
        await c.item(doc.id, doc.id).replace(doc, {
          ...(etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : {}),
          ...(signal ? { abortSignal: signal } : {}),
        });
        return true;
      } catch (error) {
        if (isNotFound(error) || isPreconditionFailed(error)) return false;
        throw error;
      }
    }, signal);
  }

  private delete(id: string): Promise<void> {
    return this.call(async (c) => {
      try {
        await c.item(id, id).delete();
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    });
  }

  /**
   * Runs one Cosmos DB operation; its failures become domain errors (see `translate`). With a signal, it ends
   * when the signal aborts, rejecting with the signal's reason: the SDK's wait before retrying a 429 cannot be
   * cut short, but the request after it is aborted before it is sent (the operation passes the signal on).
   */
  private async call<T>(operation: (container: Container) => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const run = (async () => {
      try {
        return await operation(await this.container());
      } catch (error) {
        throw translate(error);
      }
    })();
    return signal ? untilAborted(run, signal) : run;
  }

  private iso(): string {
    return this.now().toISOString();
  }
}

/**
 * 429/503/timeouts as every adapter (translateCosmosError). A request Cosmos DB refuses for what it holds (400,
 * e.g. an id it cannot take; 413; 414), or one the SDK cannot even build (URIError: an id that is not
 * well-formed UTF-16), fails the same way every time: AlarmRejectedError, never retried.
 */
function translate(error: unknown): unknown {
  if (isRefused(error))
    return new AlarmRejectedError(
      `Cosmos DB cannot take this alarm (${refusalReason(error)}): ${errorText(error)}`,
    );
  return translateCosmosError(error);
}

/** `work`'s outcome, or the signal's reason as soon as it aborts (then `work` ends unobserved). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}

const slotDoc = (id: string, alarmId: string): Slot => ({ id, type: 'slot', alarmId });

function strip(stored: StoredAlarm): Alarm {
  const {
    type: _type,
    _etag,
    unlinked: _unlinked,
    ...alarm
  } = stored as StoredAlarm & Record<string, unknown>;
  for (const key of ['_rid', '_self', '_attachments', '_ts']) Reflect.deleteProperty(alarm, key);
  return alarm;
}
