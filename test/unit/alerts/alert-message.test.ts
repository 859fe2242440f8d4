import { describe, expect, it } from 'vitest';
import { slackMessages, type Alert } from '../../../src/alerts/alert-message.js';

// Issue 15, item 2.5: the alert's device link went to GET /api/devices/{id}/state, a function-key route: it
// answered locally (no keys checked) and 401 in Azure for whoever clicked it in Slack. A link now goes only to a
// page the recipient can open (the operator's console, Alerts__DeviceLinkTemplate); the API route is named as text.

const alert: Alert = {
  alarmId: 'a-1',
  deviceId: 'dev<1>&',
  rule: 'temperature-high',
  kind: 'threshold',
  metric: 'temperature',
  value: 41.5,
  score: undefined,
  threshold: 40,
  at: '2026-11-23T10:00:00.000Z',
  count: 1,
};
const stateApiUrl = (id: string) => `https://app.example/api/devices/${encodeURIComponent(id)}/state`;
const lineOf = (links: Parameters<typeof slackMessages>[1]) =>
  (slackMessages([alert], links)[0]?.body as { text: string }).text.split('\n')[1];

describe('alert lines: links the recipient can open', () => {
  it('without a console, links nowhere and names the key-protected state route as text', () => {
    const line = lineOf({ stateApiUrl });
    expect(line).toBe(
      '• dev&lt;1&gt;&amp; temperature-high: temperature = 41.5 (threshold 40) at 2026-11-23T10:00:00.000Z · state: `GET https://app.example/api/devices/dev%3C1%3E%26/state` (function key)',
    );
    expect(line).not.toMatch(/<https?:/); // no Slack link at all
  });

  it("with a console template, the device id links to the console's device page", () => {
    const line = lineOf({
      stateApiUrl,
      deviceUrl: (id) => `https://console.example/devices/${encodeURIComponent(id)}`,
    });
    expect(line).toBe(
      '• <https://console.example/devices/dev%3C1%3E%26|dev&lt;1&gt;&amp;> temperature-high: temperature = 41.5 (threshold 40) at 2026-11-23T10:00:00.000Z',
    );
    expect(line).not.toContain('/api/');
  });
});
