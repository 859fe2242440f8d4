import {
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  PreconditionFailedError,
  ThrottledError,
  UnprocessableRequestError,
} from '../../shared/errors.js';

/** The HTTP status behind an azure-iothub SDK error (the SDK keeps the response on the error). */
export const iotHubStatus = (error: unknown): number | undefined =>
  (error as { response?: { statusCode?: number } } | undefined)?.response?.statusCode;

/** IoT Hub's own message (it carries no secrets: IoT Hub never echoes keys in error bodies). */
const messageOf = (error: unknown) => (error instanceof Error ? error.message : 'invalid request');

/** Maps IoT Hub REST errors (400, 404, 409, 412, 429) to domain errors; anything else passes through. */
export function translateIotHubError(
  error: unknown,
  deviceId: string,
  what = `Device '${deviceId}'`,
): unknown {
  switch (iotHubStatus(error)) {
    case 400:
      return new UnprocessableRequestError('IoT Hub refused the request as invalid.', [
        { path: '(body)', message: messageOf(error) },
      ]);
    case 404:
      return new DeviceNotFoundError(deviceId);
    case 409:
      return new DeviceAlreadyExistsError(deviceId);
    case 412:
      return new PreconditionFailedError(`${what} was changed concurrently in IoT Hub.`);
    case 429:
      return new ThrottledError('IoT Hub is throttling requests.');
    default:
      return error;
  }
}

/**
 * IoT Hub's error code name behind an azure-iothub SDK error, e.g. `ThrottlingException`: IoT Hub writes it
 * into the body as `{"Message":"ErrorCode:<name>;<text>"}` and the SDK keeps only `<text>` as the message.
 */
export function iotHubErrorCode(error: unknown): string | undefined {
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
export function iotHubRetryAfterSeconds(error: unknown): number | undefined {
  const header = (error as { response?: { headers?: Record<string, unknown> } } | undefined)?.response
    ?.headers?.['retry-after'];
  const seconds = typeof header === 'string' ? Number(header) : NaN;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
