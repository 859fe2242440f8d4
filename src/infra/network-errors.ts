/** Error codes of a request that never got an answer: the service could not be reached, or the line dropped. */
const UNREACHABLE_CODES = new Set([
  'TimeoutError',
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  // @azure/core-rest-pipeline's code for a request that could not be sent (socket errors without a code).
  'REQUEST_SEND_ERROR',
]);

/**
 * True when an SDK error says "the service could not be reached" (refused, reset, timed out, aborted), not
 * "the request was wrong": the network error codes Node and @azure/core-rest-pipeline use, and the
 * TimeoutError / AbortError names of the SDKs' own timeouts.
 */
export function isUnreachable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, name } = error as { code?: unknown; name?: unknown };
  return (
    (typeof code === 'string' && UNREACHABLE_CODES.has(code)) ||
    name === 'TimeoutError' ||
    name === 'AbortError'
  );
}
