import {
  ConcurrentUpdateError,
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  ServiceUnavailableError,
  ThrottledError,
  TooManyJobsError,
  UnprocessableRequestError,
} from '../../shared/errors.js';
import { isUnreachable } from '../network-errors.js';

/**
 * The one translation of azure-iothub errors into domain terms: REST answers (the SDK keeps the response on the
 * error), the per-device errors of bulk registry operations, and job creation's 429s. No other module reads an
 * IoT Hub status or error code.
 */

/** The HTTP status behind an azure-iothub SDK error. */
const iotHubStatus = (error: unknown): number | undefined =>
  (error as { response?: { statusCode?: number } } | undefined)?.response?.statusCode;

/** 404: no such device, twin or job. */
export const isNotFound = (error: unknown): boolean => iotHubStatus(error) === 404;

/** 409: the device or job id exists already. */
export const isConflict = (error: unknown): boolean => iotHubStatus(error) === 409;

/** IoT Hub's own message (it carries no secrets: IoT Hub never echoes keys in error bodies). */
const messageOf = (error: unknown) => (error instanceof Error ? error.message : 'invalid request');

/** What the translated error is about: the device it names, and how a message refers to the resource. */
export interface IotHubSubject {
  deviceId: string;
  /** The resource in messages, e.g. `The twin of 'd1'` (default `Device '<id>'`). */
  what?: string;
}

/**
 * IoT Hub's REST answers as domain errors: 400 → UnprocessableRequestError, 404 → DeviceNotFoundError, 409 →
 * DeviceAlreadyExistsError, 412 (the ETag sent no longer holds) → ConcurrentUpdateError (the caller decides
 * whether that ETag was the client's: clientPrecondition), 429 → ThrottledError with IoT Hub's Retry-After,
 * 5xx, timeouts and refused or reset connections → ServiceUnavailableError. Anything else passes through.
 */
export function translateIotHubError(error: unknown, subject: IotHubSubject): unknown {
  const status = iotHubStatus(error);
  if (status === undefined) {
    return isUnreachable(error) ? new ServiceUnavailableError('IoT Hub is unreachable.') : error;
  }
  return fromStatus(status, messageOf(error), subject, iotHubRetryAfterSeconds(error)) ?? error;
}

function fromStatus(
  status: number,
  message: string,
  { deviceId, what = `Device '${deviceId}'` }: IotHubSubject,
  retryAfterSeconds?: number,
): Error | undefined {
  switch (status) {
    case 400:
      return new UnprocessableRequestError('IoT Hub refused the request as invalid.', [
        { path: '(body)', message },
      ]);
    case 404:
      return new DeviceNotFoundError(deviceId);
    case 409:
      return new DeviceAlreadyExistsError(deviceId);
    case 412:
      return new ConcurrentUpdateError(`${what} was changed concurrently in IoT Hub.`);
    case 429:
      return new ThrottledError('IoT Hub is throttling requests.', retryAfterSeconds);
    default:
      return status >= 500 ? new ServiceUnavailableError(`IoT Hub is unavailable (${status}).`) : undefined;
  }
}

/** One device's error in a bulk registry answer (`errors[]` of POST /devices). */
export interface BulkDeviceError {
  deviceId?: string;
  errorCode?: { name?: string; value?: number } | string;
  errorStatus?: string;
}

/** A bulk answer's per-device error as the bulk outcome names it, and a message without secrets. */
export function bulkDeviceFailure(e: BulkDeviceError): {
  error: 'already-exists' | 'not-found' | 'failed';
  message: string;
} {
  const code = typeof e.errorCode === 'string' ? e.errorCode : (e.errorCode?.name ?? '');
  const error = /AlreadyExists/i.test(code)
    ? 'already-exists'
    : /NotFound/i.test(code)
      ? 'not-found'
      : 'failed';
  return { error, message: `${code}: ${e.errorStatus ?? ''}` };
}

/**
 * A bulk answer's per-device error as a domain error. IoT Hub's numeric error codes start with the HTTP status
 * (412002 PreconditionFailed, 404001 DeviceNotFound, 429001 Throttling, …), so they translate as that status
 * does; a code without a number is read by its name; a refusal that says nothing better is
 * ServiceUnavailableError (it is IoT Hub's, not the caller's).
 */
export function translateBulkDeviceError(e: BulkDeviceError, subject: IotHubSubject): Error {
  const name = typeof e.errorCode === 'string' ? e.errorCode : (e.errorCode?.name ?? '');
  const value = typeof e.errorCode === 'object' ? e.errorCode.value : undefined;
  const status =
    value !== undefined && value >= 100_000
      ? Math.floor(value / 1000)
      : /precondition/i.test(`${name} ${e.errorStatus ?? ''}`)
        ? 412
        : /NotFound/i.test(name)
          ? 404
          : /AlreadyExists/i.test(name)
            ? 409
            : /Throttl/i.test(name)
              ? 429
              : undefined;
  const message = `${name}: ${e.errorStatus ?? ''}`;
  const known = status === undefined ? undefined : fromStatus(status, message, subject);
  if (known) return known;
  // A 4xx this code does not know (403002 quota exceeded, 401…) is a refusal that waiting will not cure: never a
  // 503 that workflows would wait out; only 5xx, throttling and codes without a status are IoT Hub's trouble.
  if (status !== undefined && status >= 400 && status < 500)
    return new UnprocessableRequestError(`IoT Hub refused the update (${message}).`, [
      { path: subject.deviceId, message },
    ]);
  return new ServiceUnavailableError(`IoT Hub refused the update (${message}).`);
}

/** A bulk request's answer body when IoT Hub refused it as a whole with 400 (the per-device errors are in it). */
export function bulkRefusalBody(error: unknown): string | undefined {
  if (iotHubStatus(error) !== 400) return undefined;
  const body = (error as { responseBody?: unknown }).responseBody;
  return Buffer.isBuffer(body) ? body.toString('utf8') : typeof body === 'string' ? body : undefined;
}

// 429004 ThrottlingMaxActiveJobCountExceeded (IoT Hub error codes); JobQuotaExceeded is the name the .NET
// service SDK gives the same condition.
const TOO_MANY_JOBS_CODES = new Set(['ThrottlingMaxActiveJobCountExceeded', 'JobQuotaExceeded']);
const TOO_MANY_JOBS_TEXT = /active jobs?|quota/i;

/**
 * Errors of the job service: job creation answers 429 both when throttled and when too many jobs are active
 * (S1: 1 at a time) → TooManyJobsError for the latter; 400 → UnprocessableRequestError about the job; the rest
 * as translateIotHubError, except that 404 and 409 are not about a device (the caller handles them first).
 */
export function translateJobError(error: unknown, operation: 'start' | 'read' = 'read'): unknown {
  const status = iotHubStatus(error);
  // Only creating a job can meet the active-jobs limit; a 429 on a read is throttling (503 + Retry-After).
  if (status === 429 && operation === 'start') {
    const code = iotHubErrorCode(error);
    // The message is read only when IoT Hub sent no error code: a throttling text may mention quotas too.
    const tooMany =
      code !== undefined ? TOO_MANY_JOBS_CODES.has(code) : TOO_MANY_JOBS_TEXT.test(messageOf(error));
    if (tooMany) return new TooManyJobsError('IoT Hub is already running as many jobs as this hub allows.');
  }
  if (status === 400) {
    return new UnprocessableRequestError('IoT Hub refused the job.', [
      { path: '(job)', message: messageOf(error) },
    ]);
  }
  if (status === 404 || status === 409) return error;
  return translateIotHubError(error, { deviceId: '(job)', what: 'The job' });
}

/**
 * IoT Hub's error code name behind an azure-iothub SDK error, e.g. `ThrottlingException`: IoT Hub writes it
 * into the body as `{"Message":"ErrorCode:<name>;<text>"}` and the SDK keeps only `<text>` as the message.
 */
function iotHubErrorCode(error: unknown): string | undefined {
  const body = (error as { responseBody?: unknown } | undefined)?.responseBody;
  if (typeof body !== 'string') return undefined;
  try {
    const message = (JSON.parse(body) as { Message?: unknown }).Message;
    return typeof message === 'string' ? /^ErrorCode:(\w+);/.exec(message)?.[1] : undefined;
  } catch {
    return undefined;
  }
}

/** The `Retry-After` IoT Hub sent with an error, seconds; undefined when it sent none. */
function iotHubRetryAfterSeconds(error: unknown): number | undefined {
  const header = (error as { response?: { headers?: Record<string, unknown> } } | undefined)?.response
    ?.headers?.['retry-after'];
  const seconds = typeof header === 'string' ? Number(header) : NaN;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
