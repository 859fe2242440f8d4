/**
 * Whole-file writes that a crash cannot tear: the text goes to a temp file, is fsynced, renamed over the target,
 * and the folder entry is fsynced too. A reader after any crash sees the old file or the new one, never a mix.
 * Used by the local run's own stores (the local Cosmos DB snapshot, the durable hubs' files), which also read
 * their append-only journals back with readJsonLines.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

export function writeAtomicallySync(file: string, text: string): void {
  const temp = `${file}.tmp`;
  const fd = openSync(temp, 'w');
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
  fsyncFolder(dirname(file));
}

/** The same as writeAtomicallySync without blocking the event loop on the file writes. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = `${file}.tmp`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(text);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  fsyncFolder(dirname(file));
}

/** Makes a rename (or a new file) in `folder` durable: the entry is, once the folder is fsynced (POSIX). */
export function fsyncFolder(folder: string): void {
  // Windows cannot open a folder: skip there.
  if (process.platform === 'win32') return;
  const fd = openSync(folder, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The JSON values of a JSON-lines file (none when it does not exist). A line that does not parse is skipped: it
 * can only be the last line of a write cut short by a crash, which was never acknowledged.
 */
export function readJsonLines<T>(file: string): T[] {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
  return lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as T];
    } catch {
      return [];
    }
  });
}
