import type { Container, SqlParameter } from '@azure/cosmos';
import {
  canTransition,
  openAlarm,
  repeatAlarm,
  type Alarm,
  type AlarmQuery,
  type AlarmStore,
  type NotificationState,
} from '../../alerts/alarms.js';
import type { Anomaly } from '../../alerts/anomaly-records.js';
import { AlarmNotFoundError, InvalidTransitionError, PreconditionFailedError } from '../../shared/errors.js';
import { toStorageKey } from '../storage-keys.js';
import { cosmosStatus } from './cosmos-client.js';
import { fetchPage } from './cosmos-paging.js';

type StoredAlarm = Alarm & { type: 'alarm'; _etag?: string };
/** Points at the alarm currently collecting anomalies of one (device, rule): one active alarm per pair. */
interface Slot {
  id: string;
  type: 'slot';
  alarmId: string;
  _etag?: string;
}

const MAX_ATTEMPTS = 10;

/** AlarmStore on a Cosmos DB container (`alarms`, partition key `/id`): alarm documents plus one slot per (device, rule). */
export class CosmosAlarmStore implements AlarmStore {
  constructor(
    private readonly container: () => Promise<Container>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async record(anomaly: Anomaly): Promise<{ alarm: Alarm; outcome: 'opened' | 'repeated' | 'duplicate' }> {
    const pair = `${toStorageKey(anomaly.deviceId)}|${toStorageKey(anomaly.rule)}`;
    const slotId = `slot|${pair}`;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const slot = await this.read<Slot>(slotId);
      const current = slot ? await this.read<StoredAlarm>(slot.alarmId) : undefined;
      if (current && current.status !== 'closed') {
        const next = repeatAlarm(strip(current), anomaly, this.iso());
        if (!next) return { alarm: strip(current), outcome: 'duplicate' };
        if (await this.replace({ ...next, type: 'alarm' }, current._etag))
          return { alarm: next, outcome: 'repeated' };
        continue;
      }
      // A replay of an anomaly that a since-closed alarm already counted must not reopen anything.
      if (current?.windowEnds.includes(anomaly.windowEnd))
        return { alarm: strip(current), outcome: 'duplicate' };

      const alarm = openAlarm(`${pair}|${anomaly.windowEnd}`, anomaly, this.iso());
      if (!(await this.create({ ...alarm, type: 'alarm' }))) {
        // The opening anomaly itself, replayed.
        const existing = await this.read<StoredAlarm>(alarm.id);
        if (existing) return { alarm: strip(existing), outcome: 'duplicate' };
        continue;
      }
      const pointed = slot
        ? await this.replace(slotDoc(slotId, alarm.id), slot._etag)
        : await this.create(slotDoc(slotId, alarm.id));
      if (pointed) return { alarm, outcome: 'opened' };
      // Another writer opened an alarm for this pair meanwhile: withdraw ours and fold into theirs.
      await this.delete(alarm.id);
    }
    throw new PreconditionFailedError(
      `Alarm for ${anomaly.deviceId}/${anomaly.rule} kept changing concurrently.`,
    );
  }

  async get(id: string): Promise<Alarm | undefined> {
    const stored = await this.read<StoredAlarm>(id);
    return stored?.type === 'alarm' ? strip(stored) : undefined;
  }

  async list(query: AlarmQuery): Promise<{ items: Alarm[]; continuationToken?: string }> {
    const conditions = ["c.type = 'alarm'"];
    const parameters: SqlParameter[] = [];
    if (query.deviceId !== undefined) {
      conditions.push('c.deviceId = @deviceId');
      parameters.push({ name: '@deviceId', value: query.deviceId });
    }
    if (query.status !== undefined) {
      conditions.push('c.status = @status');
      parameters.push({ name: '@status', value: query.status });
    }
    const page = await fetchPage<StoredAlarm>(
      await this.container(),
      { query: `SELECT * FROM c WHERE ${conditions.join(' AND ')} ORDER BY c.id`, parameters },
      query,
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

  async setNotification(id: string, state: NotificationState, at?: string): Promise<void> {
    await this.update(id, (alarm) => ({
      ...alarm,
      notification: state,
      ...(at ? { lastNotifiedAt: at } : {}),
    }));
  }

  private async update(id: string, change: (alarm: Alarm) => Alarm): Promise<Alarm> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const current = await this.read<StoredAlarm>(id);
      if (current?.type !== 'alarm') throw new AlarmNotFoundError(id);
      const next = change(strip(current));
      if (await this.replace({ ...next, type: 'alarm' }, current._etag)) return next;
    }
    throw new PreconditionFailedError(`Alarm '${id}' kept changing concurrently.`);
  }

  private async read<T extends { id: string }>(id: string): Promise<T | undefined> {
    try {
      const { resource } = await (await this.container()).item(id, id).read<T>();
      return resource;
    } catch (error) {
      if (cosmosStatus(error) === 404) return undefined;
      throw error;
    }
  }

  /** false when the id is taken (409). */
  private async create(doc: { id: string; type: string }): Promise<boolean> {
    try {
      await (await this.container()).items.create(doc);
      return true;
    } catch (error) {
      if (cosmosStatus(error) === 409) return false;
      throw error;
    }
  }

  /** false when the document changed since `etag` (412) or vanished (404). */
  private async replace(doc: { id: string; type: string }, etag: string | undefined): Promise<boolean> {
    try {
      await (
        await this.container()
      )
        .item(doc.id, doc.id)
        .replace(doc, etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : {});
      return true;
    } catch (error) {
      if (cosmosStatus(error) === 412 || cosmosStatus(error) === 404) return false;
      throw error;
    }
  }

  private async delete(id: string): Promise<void> {
    try {
      await (await this.container()).item(id, id).delete();
    } catch (error) {
      if (cosmosStatus(error) !== 404) throw error;
    }
  }

  private iso(): string {
    return this.now().toISOString();
  }
}

const slotDoc = (id: string, alarmId: string): Slot => ({ id, type: 'slot', alarmId });

function strip(stored: StoredAlarm): Alarm {
  const { type: _type, _etag, ...alarm } = stored as StoredAlarm & Record<string, unknown>;
  for (const key of ['_rid', '_self', '_attachments', '_ts']) Reflect.deleteProperty(alarm, key);
  return alarm;
}
