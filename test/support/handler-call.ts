/**
 * One HTTP function invoked in process, as the Functions host would call it (through withProblemDetails), and its
 * answer read back: status, lower-cased headers, and the JSON body (`{}` when there is none).
 */
import {
  HttpRequest,
  InvocationContext,
  type HttpResponseInit,
  type InvocationContextInit,
} from '@azure/functions';
import { withProblemDetails } from '../../src/http/problem.js';

export interface HandlerReply {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string>;
  /** The response as the handler returned it, before reading. */
  raw: HttpResponseInit;
}

export interface HandlerCall {
  method: string;
  /** Path and query, e.g. `/api/devices/d1`. */
  path: string;
  params?: Record<string, string>;
  /** Sent as it is; `content-type: application/json` unless `headers` says otherwise. */
  body?: string;
  headers?: Record<string, string>;
  logHandler?: InvocationContextInit['logHandler'];
}

export async function callHandler(
  name: string,
  handler: Parameters<typeof withProblemDetails>[0],
  init: HandlerCall,
): Promise<HandlerReply> {
  const raw = (await withProblemDetails(handler)(
    new HttpRequest({
      method: init.method,
      url: `http://localhost:7071${init.path}`,
      params: init.params ?? {},
      headers: { 'content-type': 'application/json', ...init.headers },
      ...(init.body === undefined ? {} : { body: { string: init.body } }),
    }),
    new InvocationContext({
      functionName: name,
      ...(init.logHandler ? { logHandler: init.logHandler } : {}),
    }),
  )) as HttpResponseInit;
  const headers = Object.fromEntries(
    Object.entries((raw.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]),
  );
  const parsed: unknown =
    raw.jsonBody ?? (typeof raw.body === 'string' && raw.body !== '' ? JSON.parse(raw.body) : {});
  return { status: raw.status ?? 200, body: parsed as Record<string, unknown>, headers, raw };
}
