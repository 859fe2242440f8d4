import { DeviceNotFoundError, ValidationError } from '../shared/errors.js';
import type { DeviceStateStore } from './ports.js';

/** IoT Hub device ids: up to 128 characters from this set (IoT Hub documentation). */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/;

/** The parts of an HTTP request this handler reads (HttpRequest satisfies it). */
export interface RequestWithParams {
  params: Record<string, string | undefined>;
}

/** `GET /api/devices/{id}/state`: the last-known values of one device. */
export function makeGetDeviceState(deps: { stateStore: DeviceStateStore }) {
  return async function getDeviceState(request: RequestWithParams) {
    const deviceId = request.params.id ?? '';
    if (!DEVICE_ID_PATTERN.test(deviceId)) {
      throw new ValidationError('Invalid device id.', [
        { path: 'id', message: "must be 1-128 characters of A-Z a-z 0-9 - . + % _ # * ? ! ( ) , : = @ $ '" },
      ]);
    }
    const state = await deps.stateStore.get(deviceId);
    if (!state) throw new DeviceNotFoundError(deviceId);
    return { status: 200, jsonBody: state };
  };
}
