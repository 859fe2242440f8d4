import type { Registry } from 'azure-iothub';
import { withoutSystemProperties, type DeviceTwin, type TwinStore } from '../../provisioning/twin.js';
import {
  DeviceNotFoundError,
  PreconditionFailedError,
  ThrottledError,
  UnprocessableRequestError,
} from '../../shared/errors.js';

interface SdkTwin {
  deviceId?: string;
  etag?: string;
  properties?: { desired?: Record<string, unknown>; reported?: Record<string, unknown> };
}

const statusOf = (error: unknown): number | undefined =>
  (error as { response?: { statusCode?: number } } | undefined)?.response?.statusCode;

/** TwinStore on IoT Hub device twins through the `azure-iothub` SDK (GET/PATCH /twins/{id}). */
export class IotHubTwinStore implements TwinStore {
  constructor(private readonly registry: Registry) {}

  async get(deviceId: string): Promise<DeviceTwin | undefined> {
    try {
      const { responseBody } = await this.registry.getTwin(deviceId);
      return toTwin(deviceId, responseBody);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw translate(error, deviceId);
    }
  }

  async patchDesired(
    deviceId: string,
    patch: Record<string, unknown>,
    ifMatch?: string,
  ): Promise<DeviceTwin> {
    try {
      const { responseBody } = await this.registry.updateTwin(
        deviceId,
        { properties: { desired: patch } },
        ifMatch ?? '*',
      );
      return toTwin(deviceId, responseBody);
    } catch (error) {
      throw translate(error, deviceId);
    }
  }
}

function toTwin(deviceId: string, twin: SdkTwin): DeviceTwin {
  return {
    deviceId,
    etag: twin.etag ?? '',
    desired: withoutSystemProperties(twin.properties?.desired),
    reported: withoutSystemProperties(twin.properties?.reported),
  };
}

function translate(error: unknown, deviceId: string): unknown {
  switch (statusOf(error)) {
    case 400:
      return new UnprocessableRequestError('IoT Hub refused the request as invalid.', [
        { path: '(body)', message: messageOf(error) },
      ]);
    case 404:
      return new DeviceNotFoundError(deviceId);
    case 412:
      return new PreconditionFailedError(`The twin of '${deviceId}' was changed since the given ETag.`);
    case 429:
      return new ThrottledError('IoT Hub is throttling twin operations.');
    default:
      return error;
  }
}

/** IoT Hub's own message (it carries no secrets: keys are never echoed in IoT Hub error bodies). */
const messageOf = (error: unknown) => (error instanceof Error ? error.message : 'invalid request');
