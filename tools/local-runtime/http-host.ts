/**
 * The embedded runtime's HTTP host: one server on loopback that hands each request to the runtime's parts in
 * turn (durable API, device gateway) and otherwise to the app's HTTP triggers, routed as the Functions host
 * routes them (host.json `routePrefix`, route templates, methods; literal segments outrank parameters).
 */
import functions, { type HttpResponseInit } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PayloadTooLargeError, ValidationError } from '../../src/shared/errors.js';
import { triggerBinding, type Registration } from './event-hubs.js';
import { authorized, type FunctionKeys } from './function-keys.js';
import { BodyTooLarge, decodablePath, readBody, send, sendProblem, type RequestHandler } from './http-io.js';
import { levelOfHost, type Logger } from './invocation-log.js';
import { formatLogArgs, formatLogValue } from './log-format.js';

const { HttpRequest, InvocationContext } = functions;

/** Route template → matcher; literal segments outrank parameters, as the Functions host routes. */
export function compileRoute(template: string): {
  score: number;
  match: (path: string) => Record<string, string> | undefined;
} {
  const segments = template.split('/').filter(Boolean);
  const score = segments.length * 100 + segments.filter((s) => !s.startsWith('{')).length;
  return {
    score,
    match: (path) => {
      const parts = path.split('/').filter(Boolean);
      if (parts.length !== segments.length) return undefined;
      const params: Record<string, string> = {};
      for (const [i, segment] of segments.entries()) {
        const part = decodeURIComponent(parts[i] ?? '');
        const param = /^\{([^}:?]+)/.exec(segment);
        if (param?.[1]) params[param[1]] = part;
        else if (segment.toLowerCase() !== part.toLowerCase()) return undefined;
      }
      return params;
    },
  };
}

/** One HTTP trigger: its methods, its `durableClient` inputs, and its compiled route. */
interface AppRoute extends ReturnType<typeof compileRoute> {
  registration: Registration;
  methods: string[];
  /** The binding's authLevel (anonymous, function, admin). */
  authLevel: unknown;
  extraInputs: { name: string; type?: unknown }[];
}

/** The app's HTTP triggers, most specific route first. */
export function appRoutes(registrations: readonly Registration[]): AppRoute[] {
  return registrations
    .map((registration) => {
      const binding = triggerBinding(registration) ?? {};
      const template = typeof binding.route === 'string' ? binding.route : registration.metadata.name;
      const extraInputs = Object.entries(registration.metadata.bindings)
        .filter(([, b]) => b.type === 'durableClient')
        .map(([name, b]) => ({ ...b, name }));
      return {
        registration,
        methods: ((binding.methods as string[] | undefined) ?? ['GET', 'POST']).map((m) => m.toUpperCase()),
        authLevel: binding.authLevel,
        extraInputs,
        ...compileRoute(template),
      };
    })
    .sort((a, b) => b.score - a.score);
}

export interface HttpHostOptions {
  /** The runtime's own parts, asked in order before the app's routes. */
  handlers: readonly RequestHandler[];
  routes: readonly AppRoute[];
  /** host.json `extensions.http.routePrefix`. */
  routePrefix: string;
  /** The largest body any route accepts (bytes): the host reads a body before the function sees it. */
  maxApiBody: number;
  /** The data of a `durableClient` input binding (needs the origin, known once listening). */
  durableClientData: () => unknown;
  /** Keys checked for non-anonymous functions, as the host does; none: every route is open (tests, `npm start`). */
  keys?: FunctionKeys;
  log: Logger;
}

/** Headers as the v4 library's HttpRequest takes them (repeated headers joined). */
const requestHeaders = (req: IncomingMessage) =>
  Object.fromEntries(
    Object.entries(req.headers).flatMap(([k, v]) =>
      typeof v === 'string' ? [[k, v]] : Array.isArray(v) ? [[k, v.join(', ')]] : [],
    ),
  );

/** Invokes one HTTP trigger for a request and sends its answer. */
async function invoke(
  route: AppRoute,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  params: Record<string, string>,
  options: HttpHostOptions,
) {
  const name = route.registration.metadata.name;
  const body = await readBody(req, options.maxApiBody);
  const request = new HttpRequest({
    method: req.method ?? 'GET',
    url: url.href,
    headers: requestHeaders(req),
    query: Object.fromEntries(url.searchParams),
    params,
    ...(body.length > 0 ? { body: { bytes: body } } : {}),
  });
  const context = new InvocationContext({
    functionName: name,
    invocationId: randomUUID(),
    options: { trigger: { type: 'httpTrigger', name: 'request' }, extraInputs: route.extraInputs as never[] },
    logHandler: (level, ...args) => {
      options.log(`[${name}] ${formatLogArgs(args)}`, levelOfHost(level));
    },
  });
  for (const input of route.extraInputs) context.extraInputs.set(input.name, options.durableClientData());
  const reply = (await route.registration.callback(request, context)) as HttpResponseInit & {
    headers?: Record<string, string> | Headers;
  };
  const headers = Object.fromEntries(
    reply.headers instanceof Headers ? reply.headers : Object.entries(reply.headers ?? {}),
  );
  if (reply.jsonBody !== undefined) {
    const json = { 'content-type': 'application/json', ...headers };
    send(res, reply.status ?? 200, JSON.stringify(reply.jsonBody), json);
  } else {
    send(res, reply.status ?? 200, typeof reply.body === 'string' ? reply.body : undefined, headers);
  }
}

/** Routes one request: the runtime's parts, then the app's routes under the prefix; 404 otherwise. */
async function route(req: IncomingMessage, res: ServerResponse, url: URL, options: HttpHostOptions) {
  const path = url.pathname;
  if (!decodablePath(path)) {
    // A host cannot route a path whose %-escapes are not UTF-8: 400, whatever the route.
    sendProblem(res, new ValidationError('The path is not valid percent-encoded UTF-8.'), path);
    return;
  }
  for (const handler of options.handlers) if (await handler(req, res, path, url)) return;
  const prefix = `/${options.routePrefix}/`;
  if (!path.startsWith(prefix)) {
    send(res, 404, { message: 'Not found' });
    return;
  }
  const routePath = path.slice(prefix.length);
  for (const candidate of options.routes) {
    const params = candidate.match(routePath);
    if (!params || !candidate.methods.includes(req.method ?? 'GET')) continue;
    // The host checks the key before reading the body or running the function: 401, empty body.
    if (!authorized(candidate.authLevel, req, url, options.keys)) send(res, 401, undefined);
    else await invoke(candidate, req, res, url, params, options);
    return;
  }
  send(res, 404, { message: `No function serves ${req.method ?? 'GET'} ${path}` });
}

/** A request that threw: 413 for a body over the limit, else logged and 500. */
function failed(req: IncomingMessage, res: ServerResponse, path: string, error: unknown, log: Logger) {
  if (error instanceof BodyTooLarge) {
    // Stop reading: answer now and close the connection rather than drain the rest.
    sendProblem(res, new PayloadTooLargeError(error.maxBytes), path, { connection: 'close' });
    return;
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : formatLogValue(error);
  log(`HTTP ${req.method ?? ''} ${path} failed: ${detail}`);
  if (!res.headersSent) send(res, 500, { message: 'Internal error' });
}

export interface HttpHost {
  server: Server;
  /** e.g. http://localhost:7071 */
  origin: string;
  /** HTTP requests not yet answered (a shutdown reports those it stopped without). */
  openRequests(): number;
}

/** Starts the server on `127.0.0.1:{port}` (0 = a free one); resolves once it listens. */
export async function startHttpHost(port: number, options: HttpHostOptions): Promise<HttpHost> {
  let origin = '';
  let open = 0;
  const server = createServer((req, res) => {
    open++;
    res.once('close', () => open--);
    void (async () => {
      const url = new URL(req.url ?? '/', origin || 'http://localhost');
      try {
        await route(req, res, url, options);
      } catch (error) {
        failed(req, res, url.pathname, error, options.log);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  origin = `http://localhost:${(server.address() as AddressInfo).port}`;
  return { server, origin, openRequests: () => open };
}
