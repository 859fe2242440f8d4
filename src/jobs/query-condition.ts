import { UnprocessableRequestError } from '../shared/errors.js';
import type { HubJobTarget, TagValue } from './ports.js';

/** IoT Hub's limit on a job's query condition, bytes (IoT Hub query language: 8 KB per query). */
export const MAX_QUERY_CONDITION_BYTES = 8 * 1024;

/** Tag paths: dotted plain identifiers, so they can be written into a condition as they are. */
export const TAG_PATH = /^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,4}$/;

// The query language has no documented escape for quotes inside string literals: refuse them instead of guessing.
const UNQUOTABLE = /['\\\p{Cc}]/u;

/** A string literal for the IoT Hub query language; undefined when the text cannot be written safely. */
function literal(value: TagValue): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'boolean') return String(value);
  return UNQUOTABLE.test(value) ? undefined : `'${value}'`;
}

/**
 * The IoT Hub job query condition for a validated target, e.g.
 * `deviceId IN ['a', 'b'] AND status = 'enabled' AND tags.site = 'north'`. Throws 422 when a value cannot be
 * quoted or the condition would pass IoT Hub's 8 KB limit.
 */
export function buildQueryCondition(target: HubJobTarget): string {
  const clauses: string[] = [];
  const problems: { path: string; message: string }[] = [];
  if (target.deviceIds !== undefined) {
    const ids = target.deviceIds.map((id, i) => {
      const quoted = literal(id);
      if (quoted === undefined) problems.push({ path: `deviceIds[${i}]`, message: "cannot contain ' or \\" });
      return quoted;
    });
    clauses.push(`deviceId IN [${ids.join(', ')}]`);
  }
  if (target.status !== undefined) clauses.push(`status = '${target.status}'`);
  for (const [path, value] of Object.entries(target.tags ?? {})) {
    const quoted = literal(value);
    if (!TAG_PATH.test(path)) problems.push({ path: `tags.${path}`, message: 'must be a dotted identifier' });
    else if (quoted === undefined)
      problems.push({ path: `tags.${path}`, message: "cannot contain ' or \\ or control characters" });
    else clauses.push(`tags.${path} = ${quoted}`);
  }
  if (clauses.length === 0) problems.push({ path: 'target', message: 'must narrow the devices somehow' });
  const condition = clauses.join(' AND ');
  const bytes = Buffer.byteLength(condition, 'utf8');
  if (bytes > MAX_QUERY_CONDITION_BYTES)
    problems.push({
      path: 'target',
      message: `condition is ${bytes} bytes; at most ${MAX_QUERY_CONDITION_BYTES}`,
    });
  if (problems.length > 0)
    throw new UnprocessableRequestError('The job target cannot be sent to IoT Hub.', problems);
  return condition;
}

/**
 * Splits device ids into batches whose `deviceId IN [...]` clause, with the rest of the target's condition,
 * stays under the 8 KB limit; one IoT Hub job runs per batch.
 */
export function splitDeviceIds(
  deviceIds: readonly string[],
  rest: Omit<HubJobTarget, 'deviceIds'>,
): string[][] {
  const fixed = Buffer.byteLength(buildQueryCondition({ ...rest, deviceIds: [] }), 'utf8');
  const budget = MAX_QUERY_CONDITION_BYTES - fixed;
  const batches: string[][] = [];
  let current: string[] = [];
  let size = 0;
  for (const id of deviceIds) {
    // Each id costs its bytes, two quotes and a ", " separator.
    const cost = Buffer.byteLength(id, 'utf8') + 4;
    if (current.length > 0 && size + cost > budget) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(id);
    size += cost;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
