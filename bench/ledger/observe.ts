/**
 * What the stores hold for one phase, read directly (never through the fault proxies): the raw archive and
 * dead-letter blobs in Azurite, device state and alarms in the Cosmos DB server, and what the Slack webhook got.
 * Archive and dead-letter blobs are write-once, so each is downloaded once and remembered.
 */
import type { Container } from '@azure/cosmos';
import type { ContainerClient } from '@azure/storage-blob';
import type { PhasePlan } from './plan.js';

export interface StoreReaders {
  archive: ContainerClient;
  deadLetters: ContainerClient;
  state: Container;
  alarms: Container;
  /** Bodies the Slack webhook received so far. */
  slackRequests: () => readonly { body: Record<string, unknown> }[];
}

interface Line {
  seq: string | undefined;
  deviceId: string | undefined;
  reason: string | undefined;
}

/** Lines of write-once JSON-lines blobs, each blob read once. */
export class BlobLines {
  private readonly seen = new Map<string, Line[]>();

  constructor(private readonly container: ContainerClient) {}

  async all(): Promise<Line[]> {
    if (!(await this.container.exists())) return [];
    for await (const blob of this.container.listBlobsFlat()) {
      if (this.seen.has(blob.name)) continue;
      const text = (await this.container.getBlobClient(blob.name).downloadToBuffer()).toString('utf8');
      this.seen.set(blob.name, text.split('\n').filter(Boolean).map(parseLine));
    }
    const lines: Line[] = [];
    for (const list of this.seen.values()) for (const line of list) lines.push(line);
    return lines;
  }
}

function parseLine(text: string): Line {
  try {
    const value = JSON.parse(text) as {
      deviceId?: unknown;
      reason?: unknown;
      properties?: Record<string, unknown>;
    };
    const seq = value.properties?.seq;
    return {
      seq: typeof seq === 'string' ? seq : undefined,
      deviceId: typeof value.deviceId === 'string' ? value.deviceId : undefined,
      reason: typeof value.reason === 'string' ? value.reason : undefined,
    };
  } catch {
    return { seq: undefined, deviceId: undefined, reason: 'unreadable line' };
  }
}

interface StoredAlarm {
  deviceId: string;
  rule: string;
  windowEnds: string[];
  notification: string;
}

export interface Observation {
  messagesIn: number;
  recordsInState: number;
  archivedLines: number;
  deadLetteredLines: number;
  /** Messages with no trace where they must be, plus state records neither in state nor parked. */
  unaccounted: number;
  /** Seqs of good records found parked in dead letters (storage failures, a neighbour's bad record…). */
  goodParked: number;
  deadLetterReasons: Record<string, number>;
  anomaliesIn: number;
  anomaliesInAlarms: number;
  /** Distinct (device, rule) pairs that must have an alarm. */
  alarmsExpected: number;
  alarmsRecorded: number;
  slackRequests: number;
  slackAlerts: number;
  alarmsNotified: number;
  duplicates: number;
  pending: number;
  undeliverable: number;
  /** Up to 10 unaccounted seqs, for the log. */
  missing: string[];
}

/** Counts one phase in the stores; `sent` holds the seqs the gateway accepted. */
export async function observe(
  readers: StoreReaders,
  archive: BlobLines,
  deadLetters: BlobLines,
  plan: PhasePlan,
  sent: ReadonlySet<string>,
): Promise<Observation> {
  const mine = (line: Line) => line.deviceId?.startsWith(`${plan.prefix}-`) ?? false;
  const archived = (await archive.all()).filter(mine);
  const parked = (await deadLetters.all()).filter(mine);
  const archivedSeqs = new Set(archived.map((l) => l.seq));
  const parkedSeqs = new Set(parked.map((l) => l.seq));
  const reasons: Record<string, number> = {};
  for (const l of parked) reasons[l.reason ?? '?'] = (reasons[l.reason ?? '?'] ?? 0) + 1;

  const fields = await stateFields(readers.state, plan.prefix);
  let recordsInState = 0;
  let goodParked = 0;
  const missing: string[] = [];
  for (const list of plan.messages.values()) {
    for (const m of list) {
      if (!sent.has(m.seq)) continue;
      const inState = fields.get(m.deviceId)?.has(`s${m.index}`) ?? false;
      if (m.expect.state && inState) recordsInState++;
      if (!m.expect.deadLetter && parkedSeqs.has(m.seq)) goodParked++;
      const traced =
        (m.expect.archive && (archivedSeqs.has(m.seq) || parkedSeqs.has(m.seq))) ||
        (!m.expect.archive && parkedSeqs.has(m.seq));
      const stateOk = !m.expect.state || inState || parkedSeqs.has(m.seq);
      if (!traced || !stateOk) missing.push(m.seq);
    }
  }

  const alarms = await phaseAlarms(readers.alarms, plan.prefix);
  const slack = slackAlerts(readers.slackRequests(), plan.prefix);
  let duplicates = 0;
  for (const n of slack.perAlarm.values()) duplicates += Math.max(0, n - 1);
  return {
    messagesIn: sent.size,
    recordsInState,
    archivedLines: archived.length,
    deadLetteredLines: parked.length,
    unaccounted: missing.length,
    goodParked,
    deadLetterReasons: reasons,
    anomaliesIn: plan.anomalies,
    anomaliesInAlarms: alarms.reduce((n, a) => n + a.windowEnds.length, 0),
    alarmsExpected: plan.alarms,
    alarmsRecorded: alarms.length,
    slackRequests: slack.requests,
    slackAlerts: slack.lines,
    alarmsNotified: alarms.filter((a) => a.notification === 'sent' || a.notification === 'logged').length,
    duplicates,
    pending: alarms.filter((a) => a.notification === 'pending' || a.notification === 'notifying').length,
    undeliverable: alarms.filter((a) => a.notification === 'undeliverable').length,
    missing: missing.slice(0, 10),
  };
}

/** Device id → names of its telemetry fields in state. */
async function stateFields(container: Container, prefix: string): Promise<Map<string, Set<string>>> {
  const resources = await queryAll(
    container.items.query<{ deviceId: string; telemetry?: Record<string, unknown> }>({
      query: 'SELECT c.deviceId, c.telemetry FROM c WHERE STARTSWITH(c.deviceId, @prefix)',
      parameters: [{ name: '@prefix', value: `${prefix}-` }],
    }),
  );
  return new Map(resources.map((r) => [r.deviceId, new Set(Object.keys(r.telemetry ?? {}))]));
}

/** The phase's alarms as the API lists them (not the inert leftovers of a lost race to open one: `unlinked`). */
function phaseAlarms(container: Container, prefix: string): Promise<StoredAlarm[]> {
  return queryAll(
    container.items.query<StoredAlarm>({
      query:
        "SELECT * FROM c WHERE c.type = 'alarm' AND NOT IS_DEFINED(c.unlinked) AND STARTSWITH(c.deviceId, @prefix)",
      parameters: [{ name: '@prefix', value: `${prefix}-` }],
    }),
  );
}

/** All results of a query; none while the container does not exist yet (created on the app's first use). */
async function queryAll<T>(query: { fetchAll(): Promise<{ resources: T[] }> }): Promise<T[]> {
  try {
    return (await query.fetchAll()).resources;
  } catch (error) {
    if ((error as { code?: unknown }).code === 404) return [];
    throw error;
  }
}

/** Alert lines (`• <url|device> rule: …` or `• device rule: …`) of this phase in the Slack messages, per (device, rule). */
function slackAlerts(
  requests: readonly { body: Record<string, unknown> }[],
  prefix: string,
): { requests: number; lines: number; perAlarm: Map<string, number> } {
  const perAlarm = new Map<string, number>();
  let count = 0;
  let lines = 0;
  for (const r of requests) {
    const text = typeof r.body.text === 'string' ? r.body.text : '';
    let mine = false;
    // `• <url|device> rule:` with a console link, `• device rule:` without one (issue 15).
    for (const m of text.matchAll(/^• (?:<[^|>]*\|([^>]+)>|(\S+)) (\S+):/gm)) {
      const deviceId = m[1] ?? m[2] ?? '';
      if (!deviceId.startsWith(`${prefix}-`)) continue;
      mine = true;
      lines++;
      const key = `${deviceId}|${m[3] ?? ''}`;
      perAlarm.set(key, (perAlarm.get(key) ?? 0) + 1);
    }
    if (mine) count++;
  }
  return { requests: count, lines, perAlarm };
}
