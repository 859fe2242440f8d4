import { errorText } from '../shared/error-text.js';
import { deadLetterBlob } from './archive-layout.js';
import type { DeadLetterStore } from './ports.js';
import type { DeadLetter } from './records.js';

/** The retry context the Functions host gives an Event Hub trigger invocation (absent in a bare fake). */
interface RetryingContext {
  retryContext?: { retryCount: number; maxRetryCount: number };
}

/**
 * Which attempt of the host's retry policy this invocation is (0 for the first), and whether it is the last: then
 * the checkpoint moves on afterwards, so what failed is parked instead of thrown. `maxRetryCount` is the
 * registered policy's, used when the host sends no retry context; negative means retry forever.
 */
export function attemptOf(
  context: RetryingContext,
  maxRetryCount: number,
): { retryCount: number; lastAttempt: boolean } {
  const retryCount = context.retryContext?.retryCount ?? 0;
  const max = context.retryContext?.maxRetryCount ?? maxRetryCount;
  return { retryCount, lastAttempt: max >= 0 && retryCount >= max };
}

/**
 * Writes what a trigger's last attempt could not process to dead letters (`storage-failure`, one blob under
 * `folder`), so nothing is lost when the host moves the checkpoint on. If even that write fails, the loss is
 * logged (naming the blob) and the error thrown. `what` names the parked items in the log ("3 record(s)").
 */
export async function parkLastAttempt(
  store: DeadLetterStore,
  letters: readonly DeadLetter[],
  log: { function: string; what: string; attempts: number; partitionId: string; folder?: string },
  context: { error(...args: unknown[]): void },
): Promise<void> {
  const blob = deadLetterBlob(letters, log.partitionId, '.storage-failure');
  if (!blob) return;
  const name = `${log.folder ?? ''}${blob.name}`;
  try {
    await store.park(name, blob.lines);
  } catch (deadLetterError) {
    context.error(
      `${log.function} LOST ${log.what}: partition ${log.partitionId}, ${name}; dead-letter write failed too`,
      errorText(deadLetterError),
    );
    throw deadLetterError;
  }
  context.error(
    `${log.function} gave up after ${log.attempts} attempts; ${log.what} parked in dead letters as ${name}`,
  );
}
