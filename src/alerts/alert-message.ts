import type { Alarm } from './alarms.js';

/** What one alert says; built from an alarm when it opens (or repeats after the cooldown). */
export interface Alert {
  alarmId: string;
  deviceId: string;
  rule: string;
  kind: string;
  metric: string;
  value: number | undefined;
  score: number | undefined;
  threshold: number | undefined;
  /** Window end / event time, ISO 8601. */
  at: string;
  count: number;
}

export const alertOf = (alarm: Alarm): Alert => ({
  alarmId: alarm.id,
  deviceId: alarm.deviceId,
  rule: alarm.rule,
  kind: alarm.kind,
  metric: alarm.metric,
  value: alarm.lastValue,
  score: alarm.lastScore,
  threshold: alarm.threshold,
  at: alarm.lastWindowEnd,
  count: alarm.count,
});

// Slack limits: 50 blocks per message, 3,000 characters per section text.
const MAX_BLOCKS = 50;
const MAX_SECTION_CHARS = 3000;

const fmt = (n: number | undefined) => (n === undefined ? 'n/a' : String(Math.round(n * 1000) / 1000));

/** Slack mrkdwn needs &, < and > escaped; device ids and metrics come from devices. */
const escape = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/**
 * Where an alert points its reader. Azure checks function keys on the API (GET /api/devices/{id}/state is
 * authLevel function), and a Slack reader has no key (nor may a message carry one): a link goes only to a page
 * the reader can open, the operator's console; without one, the state route is named as text, not linked.
 */
export interface AlertLinks {
  /** The console's page of a device (Alerts__DeviceLinkTemplate); absent: the device id is not a link. */
  deviceUrl?: (deviceId: string) => string;
  /** The key-protected API URL of a device's last-known values, shown as text when there is no console. */
  stateApiUrl: (deviceId: string) => string;
}

function line(alert: Alert, links: AlertLinks): string {
  const measure =
    alert.threshold !== undefined
      ? `${fmt(alert.value)} (threshold ${fmt(alert.threshold)})`
      : `${fmt(alert.value)} (score ${fmt(alert.score)})`;
  const repeats = alert.count > 1 ? ` ×${alert.count}` : '';
  const device = links.deviceUrl
    ? `<${links.deviceUrl(alert.deviceId)}|${escape(alert.deviceId)}>`
    : escape(alert.deviceId);
  const state = links.deviceUrl
    ? ''
    : ` · state: \`GET ${escape(links.stateApiUrl(alert.deviceId))}\` (function key)`;
  const text = `• ${device} ${escape(alert.rule)}: ${escape(alert.metric)} = ${measure} at ${alert.at}${repeats}${state}`;
  // Device ids, rules and metrics come from devices and may be long: a line never exceeds one section.
  return text.length <= MAX_SECTION_CHARS ? text : `${text.slice(0, MAX_SECTION_CHARS - 1)}…`;
}

/** One Slack message and how many alerts (consecutive, in order) it carries. */
export interface SlackMessage {
  body: object;
  alerts: number;
}

/**
 * One Slack message (Block Kit plus a `text` fallback) for one alert or a digest of many; the lines (each cut to
 * one section) are packed into non-empty sections so that every alert appears, within Slack's block and size
 * limits. Returns one message per chunk when even that does not fit; one alert is always one message.
 */
export function slackMessages(alerts: readonly Alert[], links: AlertLinks): SlackMessage[] {
  const lines = alerts.map((a) => line(a, links));
  const messages: SlackMessage[] = [];
  let sections: string[] = [];
  let current = '';
  let count = 0;
  let first = 0;
  const flush = () => {
    if (current) sections.push(current);
    const n = count;
    const title = alerts.length === 1 && n === 1 ? 'IoT alert' : `IoT alerts: ${n} anomalies`;
    messages.push({
      alerts: n,
      body: {
        text: `${title}\n${lines.slice(first, first + n).join('\n')}`.slice(0, 40_000),
        blocks: [
          { type: 'header', text: { type: 'plain_text', text: title } },
          ...sections.map((text) => ({ type: 'section', text: { type: 'mrkdwn', text } })),
        ],
      },
    });
    first += n;
    sections = [];
    current = '';
    count = 0;
  };
  for (const l of lines) {
    if (current !== '' && current.length + l.length + 1 > MAX_SECTION_CHARS) {
      sections.push(current);
      current = '';
      if (sections.length >= MAX_BLOCKS - 1) flush();
    }
    current = current ? `${current}\n${l}` : l;
    count++;
  }
  if (count > 0) flush();
  return messages;
}
