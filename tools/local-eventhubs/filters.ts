import type { PartitionLog, StoredEvent } from './partition-log.js';

/** The filter key the SDKs put the starting position under (its described-type code is 0x468C00000004). */
export const SELECTOR_FILTER = 'apache.org:selector-filter:string';

const EXPRESSION =
  /^\s*amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time)\s*(>=|>)\s*(?:'([^']*)'|(-?[0-9]+|@latest))\s*$/i;

/**
 * The first sequence number a new receiver gets, from its selector filter: `amqp.annotation.x-opt-offset > '123'`
 * (also `>=`, unquoted numbers, `-1` = from the start, `@latest` = only new events),
 * `amqp.annotation.x-opt-sequence-number > 5`, `amqp.annotation.x-opt-enqueued-time > 1700000000000` (ms).
 * No filter starts at the oldest kept event; a position before it also starts there. Throws on anything else.
 */
export function parseStartFilter(filter: unknown, log: PartitionLog): number {
  if (filter === undefined || filter === null) return log.firstSequence;
  const text = filterText(filter);
  const match = EXPRESSION.exec(text);
  if (!match) throw new Error(`Unsupported selector filter: ${text.slice(0, 200)}`);
  const field = (match[1] as string).toLowerCase();
  const inclusive = match[2] === '>=';
  const value = (match[3] ?? match[4] ?? '').trim();
  if (value === '@latest') return log.endSequence;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`Invalid position in selector filter: ${value.slice(0, 50)}`);
  let start: number;
  if (field === 'offset') {
    if (n < 0) return log.firstSequence;
    start = log.firstWhere((e: StoredEvent) => (inclusive ? e.offset >= n : e.offset > n));
  } else if (field === 'sequence-number') {
    start = inclusive ? n : n + 1;
  } else {
    start = log.firstWhere((e: StoredEvent) => (inclusive ? e.enqueuedTimeMs >= n : e.enqueuedTimeMs > n));
  }
  return Math.max(start, log.firstSequence);
}

function filterText(filter: unknown): string {
  if (typeof filter === 'string') return filter;
  const value = (filter as { value?: unknown }).value;
  if (typeof value === 'string') return value;
  if (value !== undefined && value !== null) return filterText(value);
  throw new Error('Unsupported selector filter');
}
