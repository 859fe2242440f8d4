/**
 * `npm run soak [-- --minutes 30 --devices 50 --per-device-rate 2]`: the soak benchmark (issue 13, item 5). The
 * simulator sends `devices` × `per-device-rate` messages/s through the embedded runtime for `minutes`; the
 * runtime process's RSS is printed at 5, 15 and 30 minutes (the same fractions of another length) with what the
 * runtime keeps in memory, then the growth after warm-up (target: under 10 %). Fresh in-memory local services;
 * Azurite's own memory (a separate process) is not counted. Exits 1 when a run of 30 minutes or more grows 10 %
 * or more (a shorter warm-up than the rule evaluator's 5-minute window says nothing), or when messages were
 * refused.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startLocalServices } from '../tools/local-services.js';
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
    minutes,
    devices,
    perDeviceRate,
    simulator: fileURLToPath(new URL('../tools/simulate.js', import.meta.url)),
    log: (line) => {
      console.log(line);
    },
  });
  const percent = (x: number) => `${(x * 100).toFixed(1)} %`;
  // The rule evaluator's window (5 minutes of readings) fills during warm-up: only a warm-up of at least 5
  // minutes (a run of 30) says something about growth.
  const judged = minutes >= 30;
  console.log(
    `soak: ${report.sent} messages sent, ${report.refused} refused; growth after warm-up: RSS ` +
      `${percent(report.growthAfterWarmUp)}, heap ${percent(report.heapGrowthAfterWarmUp)} (target < 10 %` +
      `${judged ? '' : '; indicative only, the warm-up is shorter than the 5-minute rule window'}); ` +
      `after draining: ${report.drained.hubEvents} hub events kept`,
  );
  if (report.refused > 0 || (judged && report.growthAfterWarmUp >= 0.1)) process.exitCode = 1;
} finally {
  await services.stop();
}
process.exit(process.exitCode ?? 0);
