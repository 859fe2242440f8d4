/** Reading and answering raw HTTP in the embedded runtime: bounded bodies, JSON and problem+json answers. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { toProblemResponse } from '../../src/http/problem.js';

/** Refused because the body is larger than the limit; nothing past the limit was kept. */
export class BodyTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`The body is larger than ${maxBytes} bytes.`);
  }
}

/** Reads a body, stopping (BodyTooLarge) as soon as it or its Content-Length passes `maxBytes`. */
export const readBody = async (
  req: IncomingMessage,
  maxBytes = Number.POSITIVE_INFINITY,
): Promise<Buffer> => {
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw new BodyTooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new BodyTooLarge(maxBytes);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
};

/** Whether every %-escape of the path decodes to well-formed UTF-8 (what a host needs to route it). */
export const decodablePath = (path: string): boolean => {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
};

/** Answers with a body: a string as is, anything else as JSON. */
export function send(
  res: ServerResponse,
  status: number,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    ...(body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}),
    ...headers,
  });
  res.end(text);
}

/** Sends a problem+json answer made by the app's own mapper (src/http/problem.ts). */
export function sendProblem(
  res: ServerResponse,
  error: unknown,
  instance: string,
  headers: Record<string, string> = {},
) {
  const problem = toProblemResponse(error, instance);
  send(res, problem.status ?? 500, typeof problem.body === 'string' ? problem.body : '', {
    ...(problem.headers as Record<string, string>),
    ...headers,
  });
}

/** A part of the runtime that may serve a request: true when it answered (or is answering) it. */
export type RequestHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  url: URL,
) => Promise<boolean>;

/** Whether `work` settled within `ms` (it is not cancelled either way). */
export async function within(ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([work.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
