/**
 * `npm run simulate -- --devices 50 --rate 5 [--anomalies] [--api http://localhost:7071/api] [--duration 60]`
 * (`--rate` is the total messages per second across all devices, `--duration` seconds): provisions simulated
 * devices through the provisioning API (or takes `--device-ids a,b,c` and resets their credentials to learn
 * keys), then sends telemetry through the device gateway with IoT Hub SAS tokens:
 * temperature, humidity and pressure as mean-reverting random walks (tools/simulated-readings.ts: they stay in a
 * band however long the run), some differential records (one field), and with
 * `--anomalies` occasional bursts above the 40 °C threshold rule. Each device also answers direct methods
 * (`reboot`, `blink`, `setInterval`) delivered by the local runtime, so device-method jobs succeed. A device the
 * backend has lost (404 on reset, 401/404 from the gateway after a restart) is registered again, with a line
 * saying so; an unreachable API is one line and exit code 1, never a stack trace.
 */
import { parseArgs } from 'node:util';
import pRetry from 'p-retry';
import { createSasToken } from '../src/provisioning/sas-token.js';
import { initialReadings, nextReadings, type Readings } from './simulated-readings.js';

const USAGE =
  'usage: npm run simulate -- [--devices 10] [--rate 2 (messages/s in total)] [--anomalies] ' +
  '[--api http://localhost:7071/api] [--device-ids a,b,c] [--host-name localhost] [--duration seconds] [--prefix sim]';

const parse = () =>
  parseArgs({
    options: {
      devices: { type: 'string', default: '10' },
      rate: { type: 'string', default: '2' },
      anomalies: { type: 'boolean', default: false },
      api: { type: 'string', default: process.env.API_BASE_URL ?? 'http://localhost:7071/api' },
      'device-ids': { type: 'string' },
      'host-name': { type: 'string', default: 'localhost' },
      duration: { type: 'string' },
      prefix: { type: 'string', default: 'sim' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
let args: ReturnType<typeof parse>['values'];
try {
  args = parse().values;
} catch (error) {
  // An unknown option or a missing value: what is wrong and the usage, not a stack trace.
  console.error(`simulate: ${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

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
  readings: Readings;
  sent: number;
}

/** An API answer that is not 2xx: the simulator explains it in one line, never with a stack trace. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    what: string,
    detail: string,
  ) {
    super(`${what}: HTTP ${status}${detail ? ` ${detail}` : ''}`);
  }
}

async function call(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(`${api}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? String(error);
    throw new Error(
      `cannot reach the API at ${api} (${cause}): is \`npm start\` running? (--api to point elsewhere)`,
    );
  }
  const text = await response.text();
  if (!response.ok) {
    let detail = text.slice(0, 200);
    try {
      const problem = JSON.parse(text) as { detail?: unknown };
      if (typeof problem.detail === 'string') detail = problem.detail;
    } catch {
      // not JSON: keep the text
    }
    throw new ApiError(response.status, `${method} ${path}`, detail);
  }
  return JSON.parse(text) as Record<string, unknown>;
}

const statusOf = (error: unknown) => (error instanceof ApiError ? error.status : undefined);
const deviceRoute = (id: string) => `/devices/${encodeURIComponent(id)}`;

/**
 * Keys for a device, whatever state the backend is in: a new device is registered; one that exists (409) gets
 * new credentials; one that the device catalog does not know (404 on reset, e.g. after a restart lost the device catalog, or
 * deleted by hand) is registered again, which adopts its identity.
 */
async function keyFor(id: string, prefer: 'register' | 'reset'): Promise<string> {
  const register = () =>
    call('POST', '/devices', { id, metadata: { model: 'simulator', site: `site-${devices.length % 3}` } });
  const reset = () => call('POST', `${deviceRoute(id)}/reset-credentials`, {});
  let reply: Record<string, unknown>;
  try {
    reply = prefer === 'reset' ? await reset() : await register();
  } catch (error) {
    const status = statusOf(error);
    if (prefer === 'register' && status === 409) {
      console.log(`simulate: ${id} is already registered (409): resetting its credentials to learn its keys`);
      reply = await reset().catch(async (again: unknown) => {
        if (statusOf(again) !== 404) throw again;
        // An identity without a catalog entry on a backend that cannot adopt it: remove it, then register.
        console.log(
          `simulate: ${id} has an identity but no catalog entry: deleting and registering it again`,
        );
        await call('DELETE', deviceRoute(id)).catch(() => ({}));
        return register();
      });
    } else if (prefer === 'reset' && status === 404) {
      console.log(`simulate: ${id} is not registered (404): registering it`);
      reply = await register();
    } else {
      throw error;
    }
  }
  return (reply.keys as { primaryKey: string }).primaryKey;
}

const ids =
  args['device-ids']
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean) ??
  Array.from({ length: deviceCount }, (_, i) => `${args.prefix}-${String(i + 1).padStart(3, '0')}`);
const devices: SimDevice[] = [];
try {
  for (const id of ids) {
    // Given devices get new credentials (the API shows keys only at registration and reset).
    const key = await keyFor(id, args['device-ids'] ? 'reset' : 'register');
    devices.push({ id, key, readings: initialReadings(), sent: 0 });
  }
} catch (error) {
  console.error(`simulate: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

/** A device the gateway refuses (401/404: identity gone or keys changed, e.g. after a restart) re-registers. */
const recovering = new Set<string>();
function recover(device: SimDevice, status: number) {
  if (recovering.has(device.id)) return;
  recovering.add(device.id);
  console.log(`simulate: gateway refused ${device.id} (HTTP ${status}): registering it again`);
  keyFor(device.id, 'register')
    .then((key) => {
      device.key = key;
    })
    .catch((error: unknown) => {
      console.error(`simulate: ${device.id}: ${error instanceof Error ? error.message : String(error)}`);
    })
    .finally(() => {
      // At most one attempt per device every 10 s.
      setTimeout(() => recovering.delete(device.id), 10_000).unref();
    });
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

/**
 * One telemetry message, retried as a device SDK retries (exponential back-off with jitter) when no answer came
 * or the hub answered 429/503 (busy): a refusal is counted only once the retries are spent. Returns the status.
 */
function sendMessage(device: SimDevice, body: string): Promise<number> {
  return pRetry(
    async () => {
      const response = await fetch(`${gateway}/devices/${encodeURIComponent(device.id)}/messages/events`, {
        method: 'POST',
        headers: {
          authorization: tokenFor(device),
          'content-type': 'application/json',
          'iothub-app-stream-id': 'telemetry',
        },
        body,
      });
      await response.body?.cancel();
      if (response.status === 429 || response.status === 503) throw new BusyError(response.status);
      return response.status;
    },
    { retries: 4, minTimeout: 250, factor: 2, randomize: true },
  ).catch((error: unknown) => {
    if (error instanceof BusyError) return error.status;
    throw error;
  });
}

class BusyError extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
  }
}

let total = 0;
let refused = 0;
/** Refusals by cause: the HTTP status, or `network` when no answer came. */
const refusedBy = new Map<string, number>();
const refuse = (cause: string) => {
  refused++;
  refusedBy.set(cause, (refusedBy.get(cause) ?? 0) + 1);
};
/** ` (503: 4, network: 1)` after the refused count, or nothing when none were refused. */
const causes = () =>
  refusedBy.size === 0 ? '' : ` (${[...refusedBy].map(([cause, n]) => `${cause}: ${n}`).join(', ')})`;
const started = Date.now();
/** One message of the next device in turn (three with a burst above the threshold). */
function sendOne() {
  const device = devices[total % devices.length] as SimDevice;
  device.readings = nextReadings(device.readings);
  const r = device.readings;
  const burst = args.anomalies && Math.random() < 0.02;
  const body =
    device.sent % 10 === 9
      ? { humidity: Math.round(r.humidity * 10) / 10, ts: new Date().toISOString() } // differential record
      : {
          temperature: Math.round((burst ? 45 + Math.random() * 5 : r.temperature) * 100) / 100,
          humidity: Math.round(r.humidity * 10) / 10,
          pressure: Math.round(r.pressure * 10) / 10,
          ts: new Date().toISOString(),
        };
  const messages = burst ? 3 : 1; // the threshold rule needs 3 readings above 40 °C within 5 minutes
  device.sent++;
  for (let i = 0; i < messages; i++) {
    total++;
    void sendMessage(device, JSON.stringify(body))
      .then((status) => {
        if (status >= 200 && status < 300) return;
        refuse(String(status));
        if (status === 401 || status === 404) recover(device, status);
      })
      .catch((error: unknown) => {
        refuse(`network ${(error as { cause?: { code?: string } }).cause?.code ?? 'error'}`);
      });
  }
  if (total % Math.max(1, Math.round(rate * 10)) === 0)
    console.log(`simulate: ${total} sent, ${refused} refused`);
}

// Paced by the clock, not by the timer's count: a late tick (a busy machine) sends what is due, so `--rate` holds
// as a total rate; at most one second's worth per tick, so a stall does not end in a flood.
const timer = setInterval(
  () => {
    if (Date.now() - started > durationMs) {
      clearInterval(timer);
      running = false;
      console.log(`simulate: done, ${total} messages sent, ${refused} refused${causes()}`);
      // Open long polls end within their wait; do not keep the process for them.
      setTimeout(() => process.exit(0), 500).unref();
      return;
    }
    const due = Math.floor(((Date.now() - started) / 1000) * rate) + 1;
    for (let n = 0; total < due && n < Math.max(1, rate); n++) sendOne();
  },
  Math.max(10, 1000 / rate),
);
process.on('SIGINT', () => {
  clearInterval(timer);
  console.log(`simulate: stopped, ${total} messages sent, ${refused} refused${causes()}`);
  process.exit(0);
});
