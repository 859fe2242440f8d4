import { ConcurrentUpdateError, ServiceUnavailableError, ThrottledError } from '../../shared/errors.js';
import { isUnreachable } from '../network-errors.js';

/**
 * The one translation of @azure/cosmos errors into domain terms: the predicates say what an answer means for
 * the adapter (the document is missing, the id is taken, …) and `translateCosmosError` turns the rest into domain
 * errors. No other module reads a Cosmos DB status code.
 */

/** The HTTP status of a Cosmos SDK error (the SDK keeps it as a numeric `code`), if it carries one. */
function cosmosStatus(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = error.code;
    return typeof code === 'number' ? code : undefined;
  }
  return undefined;
}

/** 404: no such document (or database, container). */
export const isNotFound = (error: unknown): boolean => cosmosStatus(error) === 404;

/** 409: a document with that id exists already (a create lost to another writer). */
export const isConflict = (error: unknown): boolean => cosmosStatus(error) === 409;

/** 412: the If-Match sent no longer holds (another writer changed the document since it was read). */
export const isPreconditionFailed = (error: unknown): boolean => cosmosStatus(error) === 412;

/**
 * Cosmos DB refuses the document for what it is, the same way every time: 400 (e.g. an id it cannot take), 413
 * (the 2 MB item limit), 414; or the SDK cannot even build the request (URIError: an id that is not well-formed
 * UTF-16). Retrying cannot help.
 */
export const isRefused = (error: unknown): boolean => {
  const status = cosmosStatus(error);
  return status === 400 || status === 413 || status === 414 || error instanceof URIError;
};

/** The status behind a refusal, for messages (`URIError` when the SDK refused before sending). */
export const refusalReason = (error: unknown): string => String(cosmosStatus(error) ?? 'URIError');

/** How long Cosmos DB asked us to wait, seconds: `x-ms-retry-after-ms` (the SDK's `retryAfterInMs`). */
function retryAfterSeconds(error: object): number | undefined {
  const e = error as { retryAfterInMs?: unknown; headers?: Record<string, unknown> };
  const header = e.headers?.['x-ms-retry-after-ms'];
  const ms = typeof e.retryAfterInMs === 'number' ? e.retryAfterInMs : Number(header ?? Number.NaN);
  return Number.isFinite(ms) && ms >= 0 ? Math.ceil(ms / 1000) : undefined;
}

/**
 * Cosmos DB's answers as domain errors: 429 → ThrottledError; 503/408/timeouts/refused or reset connections →
 * ServiceUnavailableError (both HTTP 503 with Retry-After; retried in triggers); 412 (the If-Match sent no longer
 * holds) → ConcurrentUpdateError naming `what` (a race to retry, see src/shared/optimistic-update.ts). Anything
 * else is returned unchanged for the adapter to judge.
 */
export function translateCosmosError(error: unknown, what = 'The document'): unknown {
  if (typeof error !== 'object' || error === null) return error;
  const status = cosmosStatus(error);
  if (status === 429)
    return new ThrottledError('Cosmos DB is throttling requests.', retryAfterSeconds(error));
  if (status === 503 || status === 408 || isUnreachable(error)) {
    const code = (error as { code?: unknown }).code;
    const reason = status ?? (typeof code === 'string' ? code : 'unreachable');
    return new ServiceUnavailableError(`Cosmos DB is unavailable (${reason}).`, retryAfterSeconds(error));
  }
  if (status === 412) return new ConcurrentUpdateError(`${what} was changed concurrently.`);
  return error;
}

/**
 * A continuation token Cosmos DB (400) or the SDK refused: the SDK parses ORDER BY tokens itself and throws
 * errors with no HTTP status, SyntaxError, TypeError or, in @azure/cosmos 4.9, a plain Error ("Failed to parse
 * continuation token", "Unable to resume ORDER BY query…"). Anything else without a status (a credential that
 * cannot get a token, a bug) is not about the token.
 */
export function isTokenRefusal(error: unknown): boolean {
  if (cosmosStatus(error) === 400) return true;
  if (error instanceof SyntaxError || error instanceof TypeError) return true;
  return error instanceof Error && /continuation token|unable to resume/i.test(error.message);
}
