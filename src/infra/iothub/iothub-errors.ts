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
