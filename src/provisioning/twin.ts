import { UnprocessableRequestError } from '../shared/errors.js';

/** The parts of a device twin the API exposes. */
export interface DeviceTwin {
  deviceId: string;
  /** Guards the next desired-properties patch (If-Match). */
  etag: string;
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}

/**
 * Twin access: IoT Hub's device twins, or the local twin store. Errors: DeviceNotFoundError, PreconditionFailedError
 * (the client's `ifMatch` is stale), ConcurrentUpdateError (a patch without `ifMatch` kept losing races).
 */
export interface TwinStore {
  get(deviceId: string): Promise<DeviceTwin | undefined>;
  /** Merges `patch` into the desired properties (`null` removes a property), only at `ifMatch` when given. */
  patchDesired(deviceId: string, patch: Record<string, unknown>, ifMatch?: string): Promise<DeviceTwin>;
}

/** IoT Hub device twin limits (IoT Hub documentation: device twins). */
export const TWIN_LIMITS = {
  /** The desired section as a whole, bytes of JSON. */
  desiredBytes: 32 * 1024,
  /** Any string value, bytes. */
  valueBytes: 4 * 1024,
  /** Any property name, bytes. */
  keyBytes: 1024,
  /** Nesting depth of objects inside the desired section. */
  depth: 10,
} as const;

// Property names may not contain '.', '$', spaces or control characters.
const BAD_KEY = /[.$\s\p{Cc}]/u;

/** Checks a desired-properties patch against IoT Hub's limits before any call; throws 422 listing every problem. */
export function validateDesiredPatch(patch: Record<string, unknown>): void {
  const problems: { path: string; message: string }[] = [];
  const size = Buffer.byteLength(JSON.stringify(patch), 'utf8');
  if (size > TWIN_LIMITS.desiredBytes) {
    problems.push({ path: 'desired', message: `is ${size} bytes; at most ${TWIN_LIMITS.desiredBytes}` });
  }
  const walk = (value: unknown, path: string, depth: number) => {
    if (typeof value === 'string' && Buffer.byteLength(value, 'utf8') > TWIN_LIMITS.valueBytes) {
      problems.push({ path, message: `string longer than ${TWIN_LIMITS.valueBytes} bytes` });
    }
    if (Array.isArray(value)) {
      problems.push({ path, message: 'arrays are not allowed in desired properties' });
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    if (depth > TWIN_LIMITS.depth) {
      problems.push({ path, message: `nested deeper than ${TWIN_LIMITS.depth} levels` });
      return;
    }
    for (const [key, child] of Object.entries(value)) {
      const childPath = `${path}.${key}`;
      if (BAD_KEY.test(key) || key === '' || Buffer.byteLength(key, 'utf8') > TWIN_LIMITS.keyBytes) {
        problems.push({
          path: childPath,
          message: "names may not be empty, over 1 KB, or contain '.', '$' or spaces",
        });
      }
      walk(child, childPath, depth + 1);
    }
  };
  walk(patch, 'desired', 1);
  if (problems.length > 0)
    throw new UnprocessableRequestError('The desired properties break IoT Hub twin limits.', problems);
}

/** Drops IoT Hub's `$metadata`, `$version` and other `$` members from a twin section. */
export function withoutSystemProperties(
  section: Record<string, unknown> | undefined,
): Record<string, unknown> {
  return Object.fromEntries(Object.entries(section ?? {}).filter(([key]) => !key.startsWith('$')));
}
