/**
 * `npm run soak [-- --minutes 30 --devices 50 --per-device-rate 2]`: the soak benchmark (issue 13, item 5). The
 * simulator sends `devices` × `per-device-rate` messages/s (with occasional anomaly bursts) through the embedded
 * runtime for `minutes`; the runtime process's RSS is printed after the 5-minute warm-up and every 5 minutes
 * (at 1/6, 1/2 and the end of a run under 10 minutes) with what the runtime and Cosmos DB keep, then the
 * growth after warm-up and the verdict (target: under 10 %). Fresh in-memory local services; Azurite's own
 * memory (a separate process) is not counted. Exits 1 when a run of 10 minutes or more (whose warm-up covers
 * the rule evaluator's 5-minute window) grows 10 % or more, or when messages were refused.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { localEventHubSettings, startLocalServices } from '../tools/local-services.js';
import { runSoak } from './soak-run.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    devices: { type: 'string', default: '50' },
    'per-device-rate': { type: 'string', default: '2' },
  },
});
const positive = (name: string, text: string) => {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got '${text}'`);
  return n;
};
const minutes = positive('minutes', args.minutes);
const devices = positive('devices', args.devices);
const perDeviceRate = positive('per-device-rate', args['per-device-rate']);

console.log(
  `soak: ${devices} devices × ${perDeviceRate} msg/s for ${minutes} min, Node ${process.version}` +
    ((globalThis as { gc?: unknown }).gc ? ', GC before each sample' : ''),
);
const services = await startLocalServices({ inMemory: true });
try {
  const report = await runSoak({
    services,
    // The runtime on this run's Event Hubs endpoint (soak-run's own defaults name none).
    settings: localEventHubSettings(services.eventHubsConnectionString),
    minutes,
    devices,
    perDeviceRate,
    simulator: fileURLToPath(new URL('../tools/simulate.js', import.meta.url)),
    log: (line) => {
      console.log(line);
    },
  });
  const percent = (x: number) => `${(x * 100).toFixed(1)} %`;
  const first = report.checkpoints[0];
  const last = report.checkpoints[report.checkpoints.length - 1];
  const grew = report.growthAfterWarmUp >= 0.1;
  console.log(
    `soak: ${report.sent} messages sent, ${report.refused} refused ${JSON.stringify(report.refusedBy)}; after draining: ` +
      `${report.drained.hubEvents} hub events kept`,
  );
  console.log(
    `soak: growth after warm-up (minute ${first?.minute ?? '?'} → ${last?.minute ?? '?'}): RSS ` +
      `${percent(report.growthAfterWarmUp)}, heap ${percent(report.heapGrowthAfterWarmUp)}; target RSS < 10 %: ` +
      (report.judged
        ? grew
          ? 'FAIL'
          : 'PASS'
        : 'not judged (the warm-up is shorter than the 5-minute rule window: run 10 minutes or more)'),
  );
  if (report.refused > 0 || (report.judged && grew)) process.exitCode = 1;
} finally {
  await services.stop();
}
process.exit(process.exitCode ?? 0);
