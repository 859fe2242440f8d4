import { RestError } from '@azure/data-tables';
import { ServiceUnavailableError, ThrottledError } from '../../shared/errors.js';
import { isUnreachable } from '../network-errors.js';

/** The HTTP status of a Table storage answer, when the error is one. */
export const tableStatus = (error: unknown): number | undefined =>
  error instanceof RestError ? error.statusCode : undefined;

/**
 * Table storage's "not now" answers as domain errors: 429 → ThrottledError; 503 (ServerBusy), 408, 500
 * OperationTimedOut and refused, reset or timed-out connections → ServiceUnavailableError (HTTP 503 with
 * Retry-After: a device SDK retries that, where a 401 or 500 would make it give up). Anything else is returned
 * unchanged for the adapter to judge.
 */
export function translateTableError(error: unknown): unknown {
  const status = tableStatus(error);
  if (status === 429) return new ThrottledError('Table storage is throttling requests.');
  const code = error instanceof RestError ? error.code : undefined;
  if (status === 503 || status === 408 || code === 'OperationTimedOut' || isUnreachable(error)) {
    return new ServiceUnavailableError(`Table storage is unavailable (${status ?? code ?? 'unreachable'}).`);
  }
  return error;
}
