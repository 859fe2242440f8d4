/**
 * How the ledger talks to the running app, as users and devices do: the provisioning API to register devices,
 * the device gateway (SAS-authenticated HTTPS, as IoT Hub's device API) to send telemetry, and read-mostly API
 * probes while faults are injected, to catch 500s that leak internals. Every loop is bounded in count and time.
 */
import pLimit from 'p-limit';
import { createSasToken } from '../../src/provisioning/sas-token.js';
import type { PhasePlan, PlannedMessage } from './plan.js';

export interface AppEndpoints {
  apiBaseUrl: string;
  origin: string;
  /** IoT Hub host name the SAS tokens are scoped to. */
  hostName: string;
}

/** Registers every device of the plan; returns each device's primary key. */
export async function registerDevices(app: AppEndpoints, plan: PhasePlan): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  const limit = pLimit(4);
  await Promise.all(
    plan.devices.map((id) =>
      limit(async () => {
        const response = await fetch(`${app.apiBaseUrl}/devices`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, metadata: { ledger: plan.prefix } }),
        });
        const body = (await response.json()) as { keys?: { primaryKey?: string } };
        const key = body.keys?.primaryKey;
        if (response.status !== 201 || !key) throw new Error(`registering ${id}: HTTP ${response.status}`);
        keys.set(id, key);
      }),
    ),
  );
  return keys;
}

export interface SendResult {
  /** Seqs the gateway accepted (204). */
  sent: Set<string>;
  /** Messages the gateway refused for good, by last HTTP status (0 = network error). */
  refused: Record<string, number>;
}

const ATTEMPTS = 3;

async function sendOne(app: AppEndpoints, key: string, m: PlannedMessage): Promise<number> {
  let status = 0;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    try {
      const response = await fetch(
        `${app.origin}/devices/${encodeURIComponent(m.deviceId)}/messages/events`,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: createSasToken(
              `${app.hostName}/devices/${m.deviceId}`,
              key,
              Math.floor(Date.now() / 1000) + 3600,
            ),
            ...Object.fromEntries(Object.entries(m.properties).map(([k, v]) => [`iothub-app-${k}`, v])),
          },
          body: m.body,
          signal: AbortSignal.timeout(30_000),
        },
      );
      await response.arrayBuffer();
      status = response.status;
      if (status === 204 || (status >= 400 && status < 500 && status !== 429)) return status;
    } catch {
      status = 0;
    }
    await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
  }
  return status;
}

/** Sends every device's messages in order, devices in parallel (`concurrency` at a time). */
export async function sendTraffic(
  app: AppEndpoints,
  plan: PhasePlan,
  keys: ReadonlyMap<string, string>,
  concurrency: number,
): Promise<SendResult> {
  const result: SendResult = { sent: new Set(), refused: {} };
  const limit = pLimit(concurrency);
  await Promise.all(
    [...plan.messages.entries()].map(([deviceId, list]) =>
      limit(async () => {
        for (const m of list) {
          const status = await sendOne(app, keys.get(deviceId) ?? '', m);
          if (status === 204) result.sent.add(m.seq);
          else result.refused[String(status)] = (result.refused[String(status)] ?? 0) + 1;
        }
      }),
    ),
  );
  return result;
}

export interface ProbeResult {
  requests: number;
  /** Count by status, 5xx only. */
  serverErrors: Record<string, number>;
  /** 500 answers whose body shows internals (stack frames, SDK error names, endpoints). */
  leaks: number;
  /** Up to 3 leaking bodies (trimmed), for the log. */
  samples: string[];
}

const INTERNALS =
  /\bat \S+ \(|node:internal|RestError|ECONN|socket hang up|127\.0\.0\.1|x-ms-|\.ts:\d+|\.js:\d+|Error: /;

/**
 * Calls read and write routes of the API, one at a time, until `until` settles or `maxRequests` were made,
 * and collects every 5xx.
 */
export async function probeApi(
  app: AppEndpoints,
  plan: PhasePlan,
  until: Promise<unknown>,
  maxRequests: number,
): Promise<ProbeResult> {
  const result: ProbeResult = { requests: 0, serverErrors: {}, leaks: 0, samples: [] };
  const phase = { over: false };
  void until.finally(() => (phase.over = true));
  const device = (n: number) => plan.devices[n % plan.devices.length] ?? '';
  const calls: ((n: number) => [string, RequestInit?])[] = [
    (n) => [`${app.apiBaseUrl}/devices/${encodeURIComponent(device(n))}/state`],
    (n) => [`${app.apiBaseUrl}/alarms?deviceId=${encodeURIComponent(device(n))}`],
    (n) => [`${app.apiBaseUrl}/devices/${encodeURIComponent(device(n))}`],
    (n) => [
      `${app.apiBaseUrl}/devices`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: `${plan.prefix}-probe-${n}` }),
      },
    ],
  ];
  for (let n = 0; !phase.over && n < maxRequests; n++) {
    const [url, init] = (calls[n % calls.length] ?? (() => ['']))(n);
    try {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });
      const body = await response.text();
      result.requests++;
      if (response.status >= 500) {
        result.serverErrors[String(response.status)] =
          (result.serverErrors[String(response.status)] ?? 0) + 1;
        if (response.status === 500 && INTERNALS.test(body)) {
          result.leaks++;
          if (result.samples.length < 3) result.samples.push(body.slice(0, 300));
        }
      }
    } catch {
      result.serverErrors.network = (result.serverErrors.network ?? 0) + 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return result;
}
