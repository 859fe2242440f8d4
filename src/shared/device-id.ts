import { ValidationError } from './errors.js';

/** IoT Hub device ids: up to 128 characters from this set (IoT Hub documentation). */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/;

/** Throws ValidationError unless `deviceId` is an id IoT Hub could issue. */
export function assertDeviceId(deviceId: string, path = 'id'): string {
  if (!DEVICE_ID_PATTERN.test(deviceId)) {
    throw new ValidationError('Invalid device id.', [
      { path, message: "must be 1-128 characters of A-Z a-z 0-9 - . + % _ # * ? ! ( ) , : = @ $ '" },
    ]);
  }
  return deviceId;
}
