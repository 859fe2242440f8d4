import type { Registry } from 'azure-iothub';
import { withoutSystemProperties, type DeviceTwin, type TwinStore } from '../../provisioning/twin.js';
import { clientPrecondition } from '../../shared/optimistic-update.js';
import { isNotFound, translateIotHubError } from './errors.js';

interface SdkTwin {
  deviceId?: string;
  etag?: string;
  properties?: { desired?: Record<string, unknown>; reported?: Record<string, unknown> };
}

/** TwinStore on IoT Hub device twins through the `azure-iothub` SDK (GET/PATCH /twins/{id}). */
export class IotHubTwinStore implements TwinStore {
  constructor(private readonly registry: Registry) {}

  async get(deviceId: string): Promise<DeviceTwin | undefined> {
    try {
      const { responseBody } = await this.registry.getTwin(deviceId);
      return toTwin(deviceId, responseBody);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translateIotHubError(error, { deviceId, what: `The twin of '${deviceId}'` });
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
      // IoT Hub merges the patch itself (If-Match: * without the client's ETag): a 412 is the client's stale ETag.
      const what = `The twin of '${deviceId}'`;
      throw clientPrecondition(translateIotHubError(error, { deviceId, what }), ifMatch, what);
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
