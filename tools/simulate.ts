/**
 * `npm run simulate -- --devices 50 --rate 5 [--anomalies] [--api http://localhost:7071/api] [--duration 60]`:
 * provisions simulated devices through the provisioning API (or takes `--device-ids a,b,c` and resets their
 * credentials to learn keys), then sends telemetry through the device gateway with IoT Hub SAS tokens:
 * temperature, humidity and pressure as noisy random walks, some differential records (one field), and with
 * `--anomalies` occasional bursts above the 40 °C threshold rule. Each device also answers direct methods
 * (`reboot`, `blink`, `setInterval`) delivered by the local runtime, so device-method jobs succeed.
 */
import { parseArgs } from 'node:util';
import { createSasToken } from '../src/provisioning/sas-token.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '10' },
    rate: { type: 'string', default: '2' },
    anomalies: { type: 'boolean', default: false },
    api: { type: 'string', default: process.env.API_BASE_URL ?? 'http://localhost:7071/api' },
    'device-ids': { type: 'string' },
    'host-name': { type: 'string', default: 'localhost' },
    duration: { type: 'string' },
    prefix: { type: 'string', default: 'sim' },
  },
});

const positive = (name: string, text: string | undefined): number => {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`simulate: --${name} must be a positive number, got '${String(text)}'`);
    process.exit(2);
  }
  return n;
};
const deviceCount = positive('devices', args.devices);
const rate = positive('rate', args.rate);
const durationMs = args.duration === undefined ? Infinity : positive('duration', args.duration) * 1000;
const api = args.api.replace(/\/+$/, '');
const gateway = new URL(api).origin;

interface SimDevice {
  id: string;
  key: string;
  temperature: number;
  humidity: number;
  pressure: number;
  sent: number;
}

async function call(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

const ids =
  args['device-ids']
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean) ??
  Array.from({ length: deviceCount }, (_, i) => `${args.prefix}-${String(i + 1).padStart(3, '0')}`);
const devices: SimDevice[] = [];
for (const id of ids) {
  // Given devices get new credentials (the API shows keys only at registration and reset).
  const reply = args['device-ids']
    ? await call('POST', `/devices/${encodeURIComponent(id)}/reset-credentials`, {})
    : await call('POST', '/devices', {
        id,
        metadata: { model: 'simulator', site: `site-${devices.length % 3}` },
      }).catch(async (error: unknown) => {
        if (!String(error).includes('HTTP 409')) throw error;
        return call('POST', `/devices/${encodeURIComponent(id)}/reset-credentials`, {});
      });
  const key = (reply.keys as { primaryKey: string }).primaryKey;
  devices.push({ id, key, temperature: 20 + Math.random() * 5, humidity: 45, pressure: 1013, sent: 0 });
}
console.log(
  `simulate: ${devices.length} devices ready; sending ${rate} messages/s to ${gateway} (Ctrl-C stops)`,
);

const tokenFor = (device: SimDevice) =>
  createSasToken(
    `${args['host-name']}/devices/${device.id}`,
    device.key,
    Math.floor(Date.now() / 1000) + 3600,
  );

/** Direct methods: each device long-polls the local runtime and answers `reboot`, `blink`, `setInterval`. */
let running = true;
const METHODS = new Set(['reboot', 'blink', 'setInterval']);
async function answerMethods(device: SimDevice): Promise<void> {
  const base = `${gateway}/devices/${encodeURIComponent(device.id)}/methods`;
  while (running) {
    try {
      const poll = await fetch(`${base}/pending?waitSeconds=20`, {
        headers: { authorization: tokenFor(device) },
      });
      if (poll.status !== 200) {
        if (poll.status !== 204) await new Promise((resolve) => setTimeout(resolve, 5000));
        continue;
      }
      const request = (await poll.json()) as { requestId: string; name: string; payload?: unknown };
      const known = METHODS.has(request.name);
      console.log(`simulate: ${device.id} got direct method '${request.name}'`);
      await fetch(`${base}/${encodeURIComponent(request.requestId)}/response`, {
        method: 'POST',
        headers: { authorization: tokenFor(device), 'content-type': 'application/json' },
        body: JSON.stringify(
          known
            ? { status: 200, payload: { method: request.name, handledAt: new Date().toISOString() } }
            : { status: 404, payload: { message: `unknown method '${request.name}'` } },
        ),
      });
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 5000));
    }
  }
}
for (const device of devices) void answerMethods(device);

const noise = (scale: number) => (Math.random() - 0.5) * 2 * scale;
let total = 0;
let refused = 0;
const started = Date.now();
const timer = setInterval(() => {
  if (Date.now() - started > durationMs) {
    clearInterval(timer);
    running = false;
    console.log(`simulate: done, ${total} messages sent, ${refused} refused`);
    // Open long polls end within their wait; do not keep the process for them.
    setTimeout(() => process.exit(0), 500).unref();
    return;
  }
  const device = devices[total % devices.length] as SimDevice;
  device.temperature += noise(0.3);
  device.humidity = Math.min(100, Math.max(0, device.humidity + noise(1)));
  device.pressure += noise(0.5);
  const burst = args.anomalies && Math.random() < 0.02;
  const body =
    device.sent % 10 === 9
      ? { humidity: Math.round(device.humidity * 10) / 10, ts: new Date().toISOString() } // differential record
      : {
          temperature: Math.round((burst ? 45 + Math.random() * 5 : device.temperature) * 100) / 100,
          humidity: Math.round(device.humidity * 10) / 10,
          pressure: Math.round(device.pressure * 10) / 10,
          ts: new Date().toISOString(),
        };
  const messages = burst ? 3 : 1; // the threshold rule needs 3 readings above 40 °C within 5 minutes
  device.sent++;
  for (let i = 0; i < messages; i++) {
    total++;
    const token = tokenFor(device);
    void fetch(`${gateway}/devices/${encodeURIComponent(device.id)}/messages/events`, {
      method: 'POST',
      headers: {
        authorization: token,
        'content-type': 'application/json',
        'iothub-app-stream-id': 'telemetry',
      },
      body: JSON.stringify(body),
    })
      .then((r) => {
        if (!r.ok) refused++;
      })
      .catch(() => refused++);
  }
  if (total % Math.max(1, Math.round(rate * 10)) === 0)
    console.log(`simulate: ${total} sent, ${refused} refused`);
}, 1000 / rate);
process.on('SIGINT', () => {
  clearInterval(timer);
  console.log(`simulate: stopped, ${total} messages sent, ${refused} refused`);
  process.exit(0);
});
