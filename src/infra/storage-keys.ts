/**
 * Cosmos DB ids and Azure Table keys may not hold '/', '\\', '?' or '#', which IoT Hub device ids may:
 * percent-encode those (and '%', so the mapping stays one-to-one).
 */
export function toStorageKey(deviceId: string): string {
  return deviceId.replace(
    /[%/\\?#]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}
