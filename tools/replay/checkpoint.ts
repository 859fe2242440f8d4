/**
 * The replay's checkpoint file: where a killed `npm run replay` resumes. Written atomically (tools/atomic-file.ts)
 * after every acknowledged batch, so a re-run re-sends at most the batches that were in flight.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeAtomically } from '../atomic-file.js';

/** What the checkpoint is for: a resume with other arguments is refused. */
export interface CheckpointScope {
  from: string;
  to: string;
  streams: string[] | null;
  devices: string[] | null;
  hub: string;
}

export interface CheckpointState {
  format: 1;
  scope: CheckpointScope;
  /** The last group (`hour|partition`) replayed completely; null before the first. */
  done: string | null;
  /** The group in progress, and within it: every message up to `position` sent, and per device up to `acked`. */
  group: string | null;
  position: number;
  acked: Record<string, number>;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** A fresh state for `scope`. */
export const newCheckpoint = (scope: CheckpointScope): CheckpointState => ({
  format: 1,
  scope,
  done: null,
  group: null,
  position: -1,
  acked: Object.create(null) as Record<string, number>,
});

/** The saved state for `scope`, or a fresh one when there is no file; throws CheckpointError for another scope. */
export function readCheckpoint(file: string, scope: CheckpointScope): CheckpointState {
  if (!existsSync(file)) return newCheckpoint(scope);
  let saved: Partial<CheckpointState>;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<CheckpointState>;
  } catch {
    throw new CheckpointError(`${file} is not a replay checkpoint`);
  }
  if (saved.format !== 1 || JSON.stringify(saved.scope) !== JSON.stringify(scope)) {
    throw new CheckpointError(
      `${file} is the checkpoint of another replay (${JSON.stringify(saved.scope)}): delete it or pass another --checkpoint`,
    );
  }
  return {
    ...newCheckpoint(scope),
    done: saved.done ?? null,
    group: saved.group ?? null,
    position: saved.position ?? -1,
    acked: Object.assign(Object.create(null) as Record<string, number>, saved.acked),
  };
}

/** Serialized atomic writes of the state as it is when each save is asked for. */
export class CheckpointWriter {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly file: string | undefined) {}

  /** Resolves once a write holding the state as of this call is durable (no-op without a file). */
  save(state: CheckpointState): Promise<void> {
    const { file } = this;
    if (file === undefined) return Promise.resolve();
    const text = `${JSON.stringify(state)}\n`;
    this.chain = this.chain.then(() => writeAtomically(file, text));
    return this.chain;
  }
}
