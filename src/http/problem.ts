import type { HttpHandler, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import {
  AlarmNotFoundError,
  ConcurrentUpdateError,
  CredentialsResetConflictError,
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  DomainError,
  InvalidTransitionError,
  JobNotFoundError,
  PayloadTooLargeError,
  PreconditionFailedError,
  StaleCatalogEntryError,
  ProvisioningInconsistencyError,
  ServiceUnavailableError,
  TooManyJobsError,
  UnprocessableRequestError,
  UnsupportedMediaTypeError,
  ValidationError,
  WorkflowNotFoundError,
} from '../shared/errors.js';

/** What a 503 advises when the backing service gave no hint, seconds. */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

const STATUS: [new (...args: never[]) => DomainError, number, string][] = [
  [ValidationError, 400, 'Bad Request'],
  [DeviceNotFoundError, 404, 'Not Found'],
  [DeviceAlreadyExistsError, 409, 'Conflict'],
  [StaleCatalogEntryError, 409, 'Conflict'],
  [AlarmNotFoundError, 404, 'Not Found'],
  [JobNotFoundError, 404, 'Not Found'],
  [WorkflowNotFoundError, 404, 'Not Found'],
  [InvalidTransitionError, 409, 'Conflict'],
  [CredentialsResetConflictError, 409, 'Conflict'],
  [PreconditionFailedError, 412, 'Precondition Failed'],
  [PayloadTooLargeError, 413, 'Content Too Large'],
  [UnsupportedMediaTypeError, 415, 'Unsupported Media Type'],
  [UnprocessableRequestError, 422, 'Unprocessable Content'],
  [TooManyJobsError, 429, 'Too Many Requests'],
  [ProvisioningInconsistencyError, 500, 'Internal Server Error'],
  // We lost an ETag race more often than Concurrency__MaxAttempts allows: the caller sent no precondition (so
  // not 412) and the same request is expected to succeed when repeated (so not 409): 503 with Retry-After.
  [ConcurrentUpdateError, 503, 'Service Unavailable'],
  // Our dependency is throttled or down, not the caller over its quota: 503 with a hint when to come back.
  [ServiceUnavailableError, 503, 'Service Unavailable'],
];

/** The one place where errors become HTTP responses: RFC 9457 problem details, no internals for the unknown. */
export function toProblemResponse(error: unknown, instance?: string): HttpResponseInit {
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (error instanceof DomainError) {
    const [, status, title] = STATUS.find(([cls]) => error instanceof cls) ?? [DomainError, 500, 'Error'];
    const body: Record<string, unknown> = {
      type: `urn:problem-type:${error.code}`,
      title,
      status,
      detail: error.message,
    };
    if (instance) body.instance = instance;
    if (
      (error instanceof ValidationError || error instanceof UnprocessableRequestError) &&
      error.errors.length > 0
    ) {
      body.errors = error.errors;
    }
    if (error instanceof ProvisioningInconsistencyError) {
      body.deviceId = error.deviceId;
      body.recordedForReconciliation = error.recorded;
    }
    if (error instanceof ServiceUnavailableError) {
      headers['retry-after'] = String(error.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS);
    }
    return { status, headers, body: JSON.stringify(body) };
  }
  return {
    status: 500,
    headers,
    body: JSON.stringify({ type: 'about:blank', title: 'Internal Server Error', status: 500, instance }),
  };
}

/** Wraps an HTTP handler so that every thrown error goes through `toProblemResponse`. */
export function withProblemDetails(
  handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>,
): HttpHandler {
  return async (request, context) => {
    try {
      return await handler(request, context);
    } catch (error) {
      if (!(error instanceof DomainError)) context.error('Unhandled error', error);
      return toProblemResponse(error, new URL(request.url).pathname);
    }
  };
}
