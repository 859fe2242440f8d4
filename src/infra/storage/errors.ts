import { ConcurrentUpdateError, ServiceUnavailableError, ThrottledError } from '../../shared/errors.js';
import { isUnreachable } from '../network-errors.js';

/**
 * The one translation of Azure Storage errors (Blob and Table storage alike: both SDKs throw
 * @azure/core-rest-pipeline's RestError with `statusCode` and the service's error `code`) into domain terms: the
 * predicates say what an answer means for the adapter, `translateStorageError` turns the rest into domain errors.
 * No other module reads a Storage status code.
 */

/** The HTTP status of a Storage SDK error (RestError keeps it as `statusCode`), if it carries one. */
function storageStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('statusCode' in error)) return undefined;
  const status = error.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The service's error code (`ServerBusy`, `OperationTimedOut`, …) or Node's network code, if any. */
function storageCode(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** 404: no such blob, entity, container or table. */
export const isNotFound = (error: unknown): boolean => storageStatus(error) === 404;

/** 409: the blob or entity exists already (a create lost to another writer). */
export const isConflict = (error: unknown): boolean => storageStatus(error) === 409;

/** 412: the condition sent (If-Match, If-None-Match: *) no longer holds. */
export const isPreconditionFailed = (error: unknown): boolean => storageStatus(error) === 412;

/**
 * Storage's answers as domain errors: 429 → ThrottledError; 503 (ServerBusy), 408, 500 OperationTimedOut and
 * refused, reset or timed-out connections → ServiceUnavailableError (HTTP 503 with Retry-After: a device SDK
 * retries that, where a 401 or 500 would make it give up); 412 → ConcurrentUpdateError naming `what` (a race to
 * retry, see src/shared/optimistic-update.ts). `service` names Blob or Table storage in messages. Anything else
 * is returned unchanged for the adapter to judge.
 */
export function translateStorageError(
  error: unknown,
  service: 'Blob storage' | 'Table storage',
  what = 'The entity',
): unknown {
  const status = storageStatus(error);
  if (status === 429) return new ThrottledError(`${service} is throttling requests.`);
  const code = storageCode(error);
  if (status === 503 || status === 408 || code === 'OperationTimedOut' || isUnreachable(error)) {
    return new ServiceUnavailableError(`${service} is unavailable (${status ?? code ?? 'unreachable'}).`);
  }
  if (status === 412) return new ConcurrentUpdateError(`${what} was changed concurrently.`);
  return error;
}

/** translateStorageError for Table storage. */
export const translateTableError = (error: unknown, what?: string): unknown =>
  translateStorageError(error, 'Table storage', what);

/** translateStorageError for Blob storage. */
export const translateBlobError = (error: unknown, what?: string): unknown =>
  translateStorageError(error, 'Blob storage', what);
