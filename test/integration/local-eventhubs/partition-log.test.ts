import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PartitionLog } from '../../../tools/local-eventhubs/partition-log.js';

const RETENTION = { maxAgeMs: 3_600_000, maxBytes: 16 * 1024 * 1024 };
let folder: string;
let file: string;

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'partition-log-'));
  file = join(folder, '0.log');
});
afterEach(async () => {
  await rm(folder, { recursive: true, force: true });
});

const item = (text: string) => ({ raw: Buffer.from(text), partitionKey: undefined });
const bodies = (log: PartitionLog, from: number, to: number) =>
  Array.from({ length: to - from }, (_, k) => {
    const event = log.at(from + k);
    return event ? `${event.sequenceNumber}:${event.raw.toString()}` : 'none';
  });

/** Makes the next write of the log's file write `bytes` bytes and then fail with ENOSPC (a full disk). */
function failNextWrite(log: PartitionLog, bytes: number): void {
  const handle = (log as unknown as { handle: { write: (...args: unknown[]) => Promise<unknown> } }).handle;
  const original = handle.write.bind(handle);
  handle.write = async (buffer: unknown) => {
    handle.write = original;
    await original((buffer as Buffer).subarray(0, bytes));
    throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  };
}

describe('PartitionLog: a failed write', () => {
  it('keeps acknowledged numbering gapless and acknowledged events on disk across a restart', async () => {
    const log = await PartitionLog.open(RETENTION, file);
    await log.append([item('A')]);
    failNextWrite(log, 5);
    await expect(log.append([item('B')])).rejects.toThrow(/ENOSPC/);
    await log.append([item('C')]);
    await log.append([item('D')]);
    expect(bodies(log, 0, 4)).toEqual(['0:A', '1:C', '2:D', 'none']);
    expect(log.endSequence).toBe(3);
    await log.close();

    const reopened = await PartitionLog.open(RETENTION, file);
    expect(bodies(reopened, 0, 3)).toEqual(['0:A', '1:C', '2:D']);
    await reopened.append([item('E')]);
    expect(bodies(reopened, 3, 4)).toEqual(['3:E']);
    await reopened.close();
  });

  it('refuses to start rather than cut acknowledged records that follow a damaged one', async () => {
    const log = await PartitionLog.open(RETENTION, file);
    for (const text of ['one', 'two', 'three']) await log.append([item(text)]);
    await log.close();
    const data = await readFile(file);
    data[10] = (data[10] ?? 0) ^ 0xff; // damage the first record's payload
    await writeFile(file, data);
    await expect(PartitionLog.open(RETENTION, file)).rejects.toThrow(/refusing to start/);
    expect((await readFile(file)).length).toBe(data.length);
  });
});
