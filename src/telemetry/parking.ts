import { errorText } from '../shared/error-text.js';
import type { BlobBatch } from './archive-layout.js';
import type { JsonLinesStore } from './ports.js';

/**
 * Writes what a trigger's last attempt could not process to dead letters, so nothing is lost when the host moves
 * the checkpoint on. If even that write fails, the loss is logged (naming the blob) and the error thrown.
 * `what` names the parked items in the log ("3 record(s)").
 */
export async function parkLastAttempt(
  store: JsonLinesStore,
  blob: BlobBatch,
  log: { function: string; what: string; attempts: number; partitionId: string },
  context: { error(...args: unknown[]): void },
): Promise<void> {
  try {
    await store.put(blob.name, blob.lines);
  } catch (deadLetterError) {
    context.error(
      `${log.function} LOST ${log.what}: partition ${log.partitionId}, ${blob.name}; dead-letter write failed too`,
      errorText(deadLetterError),
    );
    throw deadLetterError;
  }
  context.error(
    `${log.function} gave up after ${log.attempts} attempts; ${log.what} parked in dead letters as ${blob.name}`,
  );
}
