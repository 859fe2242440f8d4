/** The ledger's table and the invariants it must show (each one a test of `npm test`). */
import type { LedgerRow } from './run.js';

export interface Invariant {
  id: string;
  text: string;
  holds: (row: LedgerRow) => boolean;
}

export const INVARIANTS: readonly Invariant[] = [
  {
    id: 'nothing-unaccounted',
    text: 'every message accepted is archived, dead-lettered or (state records) in state: 0 unaccounted',
    holds: (r) => r.unaccounted === 0,
  },
  {
    id: 'bad-record-costs-only-itself',
    text: 'without faults, no good record is parked in dead letters',
    holds: (r) => r.ratePercent > 0 || r.goodParked === 0,
  },
  {
    id: 'anomalies-recorded',
    text: 'every anomaly is counted in an alarm (anomalies in = anomalies in alarms)',
    holds: (r) => r.anomaliesInAlarms === r.anomaliesIn,
  },
  {
    id: 'one-alarm-per-device-rule',
    text: 'one alarm per (device, rule): repeats and replays fold into it',
    holds: (r) => r.alarmsRecorded === r.alarmsExpected,
  },
  {
    id: 'alarms-notified',
    text: 'every alarm is notified once faults stop and redelivery ran: 0 pending, 0 undeliverable',
    holds: (r) => r.pending === 0 && r.undeliverable === 0 && r.alarmsNotified === r.alarmsRecorded,
  },
  {
    id: 'slack-equals-notified',
    text: 'Slack alert lines = alarms notified',
    holds: (r) => r.slackAlerts === r.alarmsNotified,
  },
  {
    id: 'no-duplicates',
    text: '0 duplicate Slack alerts inside the cooldown',
    holds: (r) => r.duplicates === 0,
  },
  {
    id: 'no-500-with-internals',
    text: 'no HTTP 500 whose body shows internals',
    holds: (r) => r.http.leaks === 0,
  },
  {
    id: 'no-500-under-faults',
    text: 'no HTTP 500 at all: a throttled or unavailable dependency is 503 with Retry-After',
    holds: (r) => (r.http.serverErrors['500'] ?? 0) === 0,
  },
  {
    id: 'gateway-accepts',
    text: 'the device gateway accepts every message (its identity store is not faulted)',
    holds: (r) => r.refusedByGateway === 0,
  },
];

const pad = (value: string | number, width: number) => String(value).padStart(width);

/** The ledger as a Markdown table (one row per fault rate). */
export function formatTable(rows: readonly LedgerRow[]): string {
  const head = [
    'faults',
    'msgs in',
    'in state',
    'archived lines',
    'dead-lettered lines',
    'unaccounted',
    'anomalies in',
    'in alarms',
    'alarms (expected)',
    'Slack msgs (alerts)',
    'notified',
    'dup in cooldown',
    'pending / undeliverable after',
    'HTTP 5xx (500 w/ internals)',
    'faults injected C/B/S',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---:').join('|')}|`];
  for (const r of rows) {
    const fiveXx = Object.entries(r.http.serverErrors)
      .filter(([k]) => k !== 'network')
      .reduce((n, [, v]) => n + v, 0);
    const injected = ['cosmos', 'blob', 'slack']
      .map((d) => {
        const c = r.injected[d];
        return c ? Object.values(c.injected).reduce((a, b) => a + b, 0) : 0;
      })
      .join('/');
    const cells = [
      `${r.ratePercent} %`,
      r.messagesIn,
      r.recordsInState,
      r.archivedLines,
      r.deadLetteredLines,
      r.unaccounted,
      r.anomaliesIn,
      r.anomaliesInAlarms,
      `${r.alarmsRecorded} / ${r.alarmsExpected}`,
      `${r.slackRequests} (${r.slackAlerts})`,
      r.alarmsNotified,
      r.duplicates,
      `${r.pending} / ${r.undeliverable}`,
      `${fiveXx} (${r.http.leaks})`,
      injected,
    ];
    lines.push(`| ${cells.map((c, i) => pad(c, i === 0 ? 6 : 3)).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Each invariant with ok/FAILS per row. */
export function formatInvariants(rows: readonly LedgerRow[]): string {
  return INVARIANTS.map((inv) => {
    const marks = rows.map((r) => `${r.ratePercent} %: ${inv.holds(r) ? 'ok' : 'FAILS'}`).join(', ');
    return `- ${inv.text} — ${marks}`;
  }).join('\n');
}
