import { ServiceUnavailableError, ThrottledError } from '../../shared/errors.js';
import { isUnreachable } from '../network-errors.js';

/**
 * The one translation of durable-functions client errors. The v3 client talks HTTP to the Durable extension and
 * reports its answers only in messages: "…replied with HTTP 404 response…" for an unknown instance, "…unexpected
 * status code: <n>…" for anything else it did not expect. No other module reads them.
 */

/** The extension's answer to a status query for an instance it does not know (HTTP 404). */
export const isUnknownInstance = (error: unknown): boolean =>
  error instanceof Error && /\bHTTP 404\b/.test(error.message);

/** The HTTP status the client names in its message, if any. */
function statusOf(error: unknown): number | undefined {
  if (!(error instanceof Error)) return undefined;
  const match = /unexpected status code: (\d{3})|replied with (?:an empty )?HTTP (\d{3})/.exec(error.message);
  const status = match?.[1] ?? match?.[2];
  return status === undefined ? undefined : Number(status);
}

/**
 * Durable's "not now" as domain errors: 429 → ThrottledError; 503, 502, 504, 408, timeouts and refused or reset
 * connections to the extension (the host is starting or its task hub's storage is down) →
 * ServiceUnavailableError, both HTTP 503 with Retry-After. Anything else passes through.
 */
export function translateDurableError(error: unknown): unknown {
  const status = statusOf(error);
  if (status === 429) return new ThrottledError('The Durable Functions extension is throttling requests.');
  if (status === 503 || status === 502 || status === 504 || status === 408 || isUnreachable(error)) {
    return new ServiceUnavailableError(
      `The Durable Functions extension is unavailable (${status ?? 'unreachable'}).`,
    );
  }
  return error;
}
