/**
 * `npm run bench` (second part): a burst of 1,000 anomalies through notifyAnomalies with the real Cosmos alarm
 * store on the local server and the Slack notifier against a local Slack-like webhook, then the redelivery of
 * what the burst left pending (no turn at the webhook in time). Prints the number of webhook calls, the most
 * calls in any 1-second window, and checks that every anomaly reached some message and that no alarm was
 * left undelivered.
 */
import { makeNotifyAnomalies } from '../src/alerts/notify-anomalies.js';
import { makeRedeliverAlerts } from '../src/alerts/redeliver-alerts.js';
import { loadConfig } from '../src/config.js';
import { createAdapters } from '../src/infra/adapters.js';
import { SlackWebhook } from '../src/infra/slack/slack-webhook.js';
import { SlackWebhookNotifier } from '../src/infra/slack/slack-webhook-notifier.js';
import { startFakeSlack } from '../tools/fake-slack.js';
import { iotHubBatch } from '../tools/iothub-trigger-metadata.js';
import { localAppSettings, startLocalServices } from '../tools/local-services.js';

const ANOMALIES = 1000;
const BATCH = 100;

const services = await startLocalServices({ inMemory: true });
const slack = await startFakeSlack();
try {
  const config = loadConfig({
    ...localAppSettings(services),
    IotHubEventsConnection: 'Endpoint=sb://localhost/;SharedAccessKeyName=b;SharedAccessKey=b',
    IotHubEventHubName: 'bench',
    IngestConsumerGroup: 'bench',
    CosmosDbDatabaseName: 'alerts-bench',
  });
  const adapters = createAdapters(config);
  const notifier = new SlackWebhookNotifier({
    webhook: new SlackWebhook({
      url: slack.url,
      minIntervalMs: 1000,
      timeoutMs: 10_000,
      maxRetryAfterMs: 60_000,
    }),
    links: { stateApiUrl: (id) => `http://localhost:7071/api/devices/${id}/state` },
    maxWaitMs: config.alerts.maxQueueWaitMs,
    log: (m) => {
      console.warn(m);
    },
  });
  const outbox = { outbox: config.alerts.outbox };
  const notify = makeNotifyAnomalies({
    alarms: adapters.alarms,
    notifier,
    deadLetters: adapters.deadLetters,
    cooldownMs: 600_000,
    maxRetryCount: 5,
    ...outbox,
  });
  const redeliver = makeRedeliverAlerts({ alarms: adapters.alarms, notifier, ...outbox });
  const anomalies = Array.from({ length: ANOMALIES }, (_, i) => ({
    deviceId: `burst-${String(i).padStart(4, '0')}`,
    rule: 'temperature-high',
    kind: 'threshold',
    metric: 'temperature',
    value: 41 + (i % 10),
    threshold: 40,
    windowEnd: '2026-11-23T10:00:00Z',
  }));
  const quiet = () => undefined;
  const started = Date.now();
  // All batches at once, as concurrent invocations on one instance would arrive.
  await Promise.all(
    Array.from({ length: ANOMALIES / BATCH }, (_, b) => {
      const slice = anomalies.slice(b * BATCH, (b + 1) * BATCH);
      const { triggerMetadata } = iotHubBatch(
        slice.map((body, i) => ({ body, sequenceNumber: b * BATCH + i + 1 })),
      );
      return notify(slice, { triggerMetadata, log: quiet, warn: quiet, error: quiet });
    }),
  );
  // The timer's job: what the burst left pending goes out as digests (bounded number of runs).
  for (let run = 0; run < 20; run++) {
    if ((await adapters.alarms.list({ top: 1, notification: 'pending' })).items.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await redeliver(undefined, { log: quiet, warn: quiet });
  }
  const seconds = (Date.now() - started) / 1000;
  const times = slack.requests.map((r) => r.at).sort((a, b) => a - b);
  let maxPerSecond = 0;
  for (const t of times)
    maxPerSecond = Math.max(maxPerSecond, times.filter((u) => u >= t && u < t + 1000).length);
  const text = slack.requests.map((r) => String(r.body.text)).join('\n');
  const represented = anomalies.filter(
    (a) => text.includes(`|${a.deviceId}>`) || text.includes(`• ${a.deviceId} `), // with or without a console link
  ).length;
  const alarms = await adapters.alarms.list({ top: 1000 });
  const undelivered = alarms.items.filter((a) => a.notification !== 'sent').length;
  console.log(`\nalert burst: ${ANOMALIES} anomalies in ${ANOMALIES / BATCH} concurrent batches of ${BATCH}`);
  console.log(`  webhook calls:                  ${slack.requests.length}`);
  console.log(`  max calls in any 1 s window:    ${maxPerSecond} (must be 1)`);
  console.log(`  anomalies named in a message:   ${represented} / ${ANOMALIES}`);
  console.log(`  alarms not delivered (lost):    ${undelivered} of ${alarms.items.length}`);
  console.log(`  wall time:                      ${seconds.toFixed(1)} s`);
  if (maxPerSecond > 1 || represented !== ANOMALIES || undelivered !== 0) process.exitCode = 1;
} finally {
  await slack.close();
  await services.stop();
}
