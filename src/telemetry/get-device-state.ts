import { assertDeviceId } from '../shared/device-id.js';
import { DeviceNotFoundError } from '../shared/errors.js';
import type { DeviceStateStore } from './ports.js';

/** The parts of an HTTP request this handler reads (HttpRequest satisfies it). */
export interface RequestWithParams {
  params: Record<string, string | undefined>;
}

/** `GET /api/devices/{id}/state`: the last-known values of one device. */
export function makeGetDeviceState(deps: { stateStore: DeviceStateStore }) {
  return async function getDeviceState(request: RequestWithParams) {
    const deviceId = assertDeviceId(request.params.id ?? '');
    const state = await deps.stateStore.get(deviceId);
    if (!state) throw new DeviceNotFoundError(deviceId);
    return { status: 200, jsonBody: state };
  };
}
