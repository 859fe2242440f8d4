import { z } from 'zod';

/**
 * Names refused as metadata keys (at any depth) and as metadata filter names. `JSON.parse` keeps `__proto__` as an
 * own key, but every plain-object copy after it (zod's record, spreads, `obj[key] = v`) turns it into a prototype
 * change and silently drops it; `constructor` and `prototype` resolve to inherited members on a plain object, so a
 * filter on them cannot be applied as written. Refusing them keeps "what was sent is what is stored".
 */
export const RESERVED_METADATA_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Path segments of every reserved key inside `value` (iterative walk: bodies are already depth-limited). */
export function reservedKeyPaths(value: unknown): string[][] {
  const found: string[][] = [];
  const stack: { value: unknown; path: string[] }[] = [{ value, path: [] }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (typeof next.value !== 'object' || next.value === null) continue;
    for (const [key, child] of Object.entries(next.value)) {
      const path = [...next.path, key];
      if (RESERVED_METADATA_KEYS.has(key)) found.push(path);
      else stack.push({ value: child, path });
    }
  }
  return found;
}

const RESERVED_MESSAGE = `is a reserved name (${[...RESERVED_METADATA_KEYS].join(', ')}); rename the field`;

/**
 * Metadata and desired properties as the API accepts them: a JSON object whose keys avoid the reserved names.
 * The check runs on the parsed body before the record copy, which would drop `__proto__` without a word.
 */
export const metadataSchema = z
  .unknown()
  .superRefine((value, context) => {
    for (const path of reservedKeyPaths(value)) {
      context.addIssue({ code: 'custom', path, message: RESERVED_MESSAGE });
    }
  })
  .pipe(z.record(z.string(), z.unknown()))
  .meta({ type: 'object', additionalProperties: true });

/** What the API documents about metadata. */
export const METADATA_DESCRIPTION = 'Descriptive metadata, never secrets';

/** The refusals of `reservedKeyPaths` as API problems, paths prefixed with `prefix`. */
export function reservedKeyProblems(value: unknown, prefix: string): { path: string; message: string }[] {
  return reservedKeyPaths(value).map((path) => ({
    path: [prefix, ...path].join('.'),
    message: RESERVED_MESSAGE,
  }));
}

/**
 * The refusal when `metadata` is over `maxBytes` (bytes of its JSON, UTF-8; `Provisioning__MaxMetadataBytes`),
 * none when it fits: the one size rule of registration, updates, and the provisioning starters.
 */
export function metadataSizeProblems(
  metadata: Record<string, unknown>,
  maxBytes: number,
  path = 'metadata',
): { path: string; message: string }[] {
  const bytes = Buffer.byteLength(JSON.stringify(metadata), 'utf8');
  return bytes > maxBytes ? [{ path, message: `is ${bytes} bytes; at most ${maxBytes}` }] : [];
}
