/**
 * A fault-injecting reverse proxy for tests and the fault ledger (bench/faults.ts): put between the app and one
 * dependency (the local Cosmos DB server, Azurite Blob, the Slack webhook, the IoT Hub fake), it forwards every
 * request and, at a configured rate that can change at run time, answers some of them the way that service
 * fails instead: throttled (429 / 503 ServerBusy with the service's retry hint), unavailable (503), a timeout
 * (the request is held, then the connection dropped), a connection reset, or a slow answer. Timeouts and
 * resets may also strike after the upstream handled the request (the answer is lost), which is what makes a
 * client retry a write that already happened. Faults are drawn from a seeded PRNG and counted.
 *
 * Loopback only. HTTPS upstreams (the Cosmos DB server, the IoT Hub fake) are served over HTTPS with the
 * self-signed certificate that ships with @vercel/cosmosdb-server.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { seededRandom } from './seeded-random.js';

export const FAULT_KINDS = ['throttle', 'unavailable', 'timeout', 'reset', 'slow'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Which service the fault answers imitate. */
export type Dependency = 'cosmos' | 'blob' | 'slack' | 'iothub';

export interface FaultProxyOptions {
  /** Upstream origin on loopback, e.g. `https://127.0.0.1:8081` (a path, if any, is ignored). */
  target: string;
  dependency: Dependency;
  /** Share of requests (0..1) that get a fault; change it later with `setRate`. Default 0. */
  rate?: number;
  /** Relative weights of the fault kinds; default all 1. */
  weights?: Partial<Record<FaultKind, number>>;
  /** PRNG seed: the same seed and request order give the same faults. Default 1. */
  seed?: number;
  /** How long a timeout holds a request before dropping its connection, ms. Default 2,000. */
  holdMs?: number;
  /** Extra delay of a slow answer, ms. Default 1,000. */
  slowMs?: number;
  /** The retry hint throttling answers carry, ms (Slack and IoT Hub round it up to seconds). Default 200. */
  retryAfterMs?: number;
  /** Share (0..1) of timeouts and resets that strike after the upstream handled the request. Default 0.5. */
  afterUpstreamShare?: number;
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Which requests may get a fault (e.g. one Cosmos DB partition key); default every request. */
  faultable?: (request: IncomingMessage) => boolean;
}

export interface FaultCounts {
  requests: number;
  /** Requests that reached the upstream (slow ones and lost answers included). */
  forwarded: number;
  injected: Record<FaultKind, number>;
  /** Timeouts and resets that struck after the upstream handled the request. */
  lostAnswers: number;
}

export interface FaultProxy {
  /** The proxy's origin, e.g. `https://127.0.0.1:40123` (no trailing slash). */
  origin: string;
  dependency: Dependency;
  /** Sets the fault rate (0..1) for the requests that arrive from now on. */
  setRate(rate: number): void;
  readonly rate: number;
  counts(): FaultCounts;
  resetCounts(): void;
  close(): Promise<void>;
}

export { seededRandom };

/** Weights that make every fault of one kind (with `setRate(1)`: every request). */
export const onlyFault = (kind: FaultKind): Record<FaultKind, number> =>
  Object.fromEntries(FAULT_KINDS.map((k) => [k, k === kind ? 1 : 0])) as Record<FaultKind, number>;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string | Buffer;
}

/** A throttled or unavailable answer, as the dependency itself gives it. */
export function faultAnswer(
  dependency: Dependency,
  kind: 'throttle' | 'unavailable',
  retryAfterMs: number,
): Answer {
  const seconds = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  const throttle = kind === 'throttle';
  switch (dependency) {
    case 'cosmos':
      // Cosmos DB: 429 with x-ms-retry-after-ms and substatus 3200 (RU budget); 503 ServiceUnavailable.
      return {
        status: throttle ? 429 : 503,
        headers: {
          'content-type': 'application/json',
          'x-ms-activity-id': randomUUID(),
          ...(throttle
            ? { 'x-ms-retry-after-ms': String(retryAfterMs), 'x-ms-substatus': '3200' }
            : { 'x-ms-substatus': '0' }),
        },
        body: JSON.stringify(
          throttle
            ? {
                code: 'TooManyRequests',
                message:
                  'Message: {"Errors":["Request rate is large. More Request Units may be needed, so no changes were made. Please retry this request later."]}',
              }
            : { code: 'ServiceUnavailable', message: 'Service is currently unavailable. Please retry.' },
        ),
      };
    case 'blob': {
      // Azure Storage throttles with 503 ServerBusy (no 429); an unavailable server is 503 ServerBusy too.
      const message = throttle
        ? 'Ingress is over the account limit.'
        : 'The server is currently unable to receive requests. Please retry your request.';
      return {
        status: 503,
        headers: {
          'content-type': 'application/xml',
          'x-ms-error-code': 'ServerBusy',
          'x-ms-request-id': randomUUID(),
        },
        body: `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>${message}\nRequestId:${randomUUID()}</Message></Error>`,
      };
    }
    case 'slack':
      // Slack incoming webhooks: 429 with Retry-After (seconds); outages are plain 5xx.
      return throttle
        ? {
            status: 429,
            headers: { 'content-type': 'text/plain', 'retry-after': seconds },
            body: 'rate_limited',
          }
        : { status: 503, headers: { 'content-type': 'text/plain' }, body: 'service_unavailable' };
    case 'iothub': {
      const code = throttle ? 'ThrottlingException' : 'ServiceUnavailable';
      return {
        status: throttle ? 429 : 503,
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'iothub-errorcode': code,
          ...(throttle ? { 'retry-after': seconds } : {}),
        },
        body: JSON.stringify({
          Message: `ErrorCode:${code};${throttle ? 'Throttling: too many requests.' : 'The service is unavailable.'}`,
          ExceptionMessage: `Tracking ID:${randomUUID()}`,
        }),
      };
    }
  }
}

const certificate = () => {
  const dir = dirname(createRequire(import.meta.url).resolve('@vercel/cosmosdb-server/package.json'));
  return { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
};

const emptyCounts = (): FaultCounts => ({
  requests: 0,
  forwarded: 0,
  injected: { throttle: 0, unavailable: 0, timeout: 0, reset: 0, slow: 0 },
  lostAnswers: 0,
});

/** What one running proxy keeps: its settings, upstream, fault draw, counters and pending timers. */
interface ProxyState {
  options: FaultProxyOptions;
  target: URL;
  secure: boolean;
  agent: http.Agent;
  random: () => number;
  rate: number;
  counts: FaultCounts;
  /** The proxy's own origin (the Cosmos account document is rewritten to it). */
  origin: string;
  timers: Set<NodeJS.Timeout>;
}

/** Runs `run` after `ms`, unless the proxy closes first. */
function later(state: ProxyState, ms: number, run: () => void) {
  const timer = setTimeout(() => {
    state.timers.delete(timer);
    run();
  }, ms);
  state.timers.add(timer);
}

/** The fault for the next request, drawn at the current rate by the kinds' weights; undefined forwards it. */
function pickFault(state: ProxyState): FaultKind | undefined {
  const weights = FAULT_KINDS.map((k) => Math.max(0, state.options.weights?.[k] ?? 1));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  if (state.rate <= 0 || totalWeight <= 0 || state.random() >= state.rate) return undefined;
  let x = state.random() * totalWeight;
  for (const [i, kind] of FAULT_KINDS.entries()) {
    x -= weights[i] ?? 0;
    if (x < 0) return kind;
  }
  return FAULT_KINDS[FAULT_KINDS.length - 1];
}

/**
 * The Cosmos SDK reads the account document (`GET /`) and then talks to its writable/readable locations:
 * point those at the proxy, or the SDK would go around it.
 */
function rewriteAccount(state: ProxyState, req: IncomingMessage, body: Buffer): string | Buffer {
  const { target } = state;
  if (state.options.dependency !== 'cosmos' || req.method !== 'GET' || (req.url ?? '/') !== '/') return body;
  return body
    .toString('utf8')
    .replaceAll(`${target.protocol}//${target.host}`, state.origin)
    .replaceAll(`${target.protocol}//localhost:${target.port}`, state.origin);
}

/** Forwards the request; `deliver` gets the upstream's answer (status, headers, body) or the error. */
function forward(state: ProxyState, req: IncomingMessage, deliver: (answer: Answer | Error) => void) {
  state.counts.forwarded++;
  const { target } = state;
  const headers = { ...req.headers, host: target.host };
  const upstream = (state.secure ? https : http).request(
    {
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers,
      agent: state.agent,
    },
    (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => {
        const answerHeaders: Record<string, string> = {};
        for (const [name, value] of Object.entries(response.headers)) {
          if (value === undefined || name === 'transfer-encoding' || name === 'connection') continue;
          answerHeaders[name] = Array.isArray(value) ? value.join(', ') : value;
        }
        const body = rewriteAccount(state, req, Buffer.concat(chunks));
        deliver({ status: response.statusCode ?? 502, headers: answerHeaders, body });
      });
      response.on('error', deliver);
    },
  );
  upstream.on('error', deliver);
  req.pipe(upstream);
}

function reply(res: ServerResponse, answer: Answer) {
  if (res.destroyed) return;
  const body = typeof answer.body === 'string' ? Buffer.from(answer.body, 'utf8') : answer.body;
  // A HEAD answer keeps the upstream's Content-Length (the size of the body it did not send).
  const headers =
    res.req.method === 'HEAD' ? answer.headers : { ...answer.headers, 'content-length': String(body.length) };
  res.writeHead(answer.status, headers);
  res.end(body);
}

function drop(res: ServerResponse) {
  const socket = res.socket;
  if (!socket || socket.destroyed) return;
  try {
    socket.resetAndDestroy(); // a TCP RST, as a real reset
  } catch {
    socket.destroy(); // TLS sockets cannot send an RST from here: a plain close
  }
}

/** The upstream's answer as is, or a dropped connection where the upstream failed. */
const relay = (res: ServerResponse) => (answer: Answer | Error) => {
  if (answer instanceof Error) drop(res);
  else reply(res, answer);
};

/** Serves one request: forwarded, or failed the way the drawn fault fails. */
function handle(state: ProxyState, req: IncomingMessage, res: ServerResponse) {
  const { options, counts } = state;
  counts.requests++;
  const fault = (options.faultable?.(req) ?? true) ? pickFault(state) : undefined;
  if (fault) counts.injected[fault]++;
  const afterUpstream =
    (fault === 'timeout' || fault === 'reset') && state.random() < (options.afterUpstreamShare ?? 0.5);
  if (afterUpstream) counts.lostAnswers++;
  if (fault === undefined) {
    forward(state, req, relay(res));
  } else if (fault === 'slow') {
    forward(state, req, (answer) => {
      later(state, options.slowMs ?? 1000, () => {
        relay(res)(answer);
      });
    });
  } else if (fault === 'throttle' || fault === 'unavailable') {
    req.resume();
    req.on('end', () => {
      reply(res, faultAnswer(options.dependency, fault, options.retryAfterMs ?? 200));
    });
  } else {
    const hold = fault === 'timeout' ? (options.holdMs ?? 2000) : 0;
    const dropLater = () => {
      later(state, hold, () => {
        drop(res);
      });
    };
    if (afterUpstream) forward(state, req, dropLater);
    else {
      req.resume();
      dropLater();
    }
  }
}

/** Starts a fault proxy in front of `options.target`. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  if (!LOOPBACK.has(target.hostname)) throw new Error(`fault proxy: ${target.hostname} is not loopback`);
  const secure = target.protocol === 'https:';
  const state: ProxyState = {
    options,
    target,
    secure,
    // Upstream sockets are not reused: since the local Cosmos DB server answers keep-alive, a reused upstream
    // socket made the Cosmos SDK's account read through the proxy fail (a null error; not root-caused). A test
    // tool pays one connection per request instead.
    agent: secure
      ? new https.Agent({ keepAlive: false, rejectUnauthorized: false })
      : new http.Agent({ keepAlive: false }),
    random: seededRandom(options.seed ?? 1),
    rate: clampRate(options.rate ?? 0),
    counts: emptyCounts(),
    origin: '',
    timers: new Set(),
  };
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    handle(state, req, res);
  };
  const server = secure ? https.createServer(certificate(), serve) : http.createServer(serve);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  state.origin = `${secure ? 'https' : 'http'}://127.0.0.1:${port}`;

  return {
    origin: state.origin,
    dependency: options.dependency,
    setRate: (next) => {
      state.rate = clampRate(next);
    },
    get rate() {
      return state.rate;
    },
    counts: () => structuredClone(state.counts),
    resetCounts: () => {
      state.counts = emptyCounts();
    },
    close: async () => {
      for (const timer of state.timers) clearTimeout(timer);
      state.timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      state.agent.destroy();
    },
  };
}

function clampRate(rate: number): number {
  if (!Number.isFinite(rate)) throw new Error(`fault rate must be a number in [0, 1], got ${rate}`);
  return Math.min(1, Math.max(0, rate));
}
