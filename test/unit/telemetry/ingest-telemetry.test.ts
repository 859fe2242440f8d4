import { InvocationContext } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { StateRejectedError } from '../../../src/shared/errors.js';
import { DEFAULT_INGEST_OPTIONS } from '../../../src/telemetry/ingest-options.js';
import { makeIngestTelemetry } from '../../../src/telemetry/ingest-telemetry.js';
import type { DeviceState } from '../../../src/telemetry/last-known-values.js';
import type { DeadLetterStore, DeviceStateStore, RawArchive } from '../../../src/telemetry/ports.js';
import { iotHubBatch, type TestMessage } from '../../support/iothub-batch.js';

// Unit tests of the handler's failure policy, with in-memory fakes typed as the ports. (Storage behaviour
// itself is covered by the integration tests against Azurite and the local Cosmos DB server.)

/** Write-once lines by name: both the raw archive and the dead letters. */
class MemoryLines implements RawArchive, DeadLetterStore {
  readonly blobs = new Map<string, string[]>();
  /** Names whose writes fail, as a storage outage would. */
  failing: (name: string) => boolean = () => false;
  put(name: string, lines: readonly string[]) {
    if (this.failing(name)) return Promise.reject(new Error('blob write refused'));
    if (this.blobs.has(name)) return Promise.resolve('exists' as const);
    this.blobs.set(name, [...lines]);
    return Promise.resolve('created' as const);
  }
  archive(name: string, lines: readonly string[]) {
    return this.put(name, lines);
  }
  park(name: string, lines: readonly string[]) {
    return this.put(name, lines);
  }
}

class MemoryState implements DeviceStateStore {
  readonly states = new Map<string, DeviceState>();
  constructor(private readonly fail: (deviceId: string) => Error | undefined = () => undefined) {}
  get(deviceId: string) {
    return Promise.resolve(this.states.get(deviceId));
  }
  update(deviceId: string, update: (current: DeviceState | undefined) => DeviceState | undefined) {
    const error = this.fail(deviceId);
    if (error) return Promise.reject(error);
    const next = update(this.states.get(deviceId));
    if (!next) return Promise.resolve('unchanged' as const);
    this.states.set(deviceId, next);
    return Promise.resolve('replaced' as const);
  }
  delete(deviceId: string) {
    return Promise.resolve(this.states.delete(deviceId));
  }
}

const FOUR_MESSAGES: TestMessage[] = [
  { deviceId: 'ok-1', sequenceNumber: 1, body: { t: 1 } },
  { deviceId: 'huge', sequenceNumber: 2, body: { t: 2 } },
  { deviceId: 'ok-2', sequenceNumber: 3, body: { t: 3 } },
  { deviceId: 'huge', sequenceNumber: 4, body: { u: 4 } },
];

function setup(fail?: (deviceId: string) => Error | undefined, messages = FOUR_MESSAGES) {
  const stores = {
    stateStore: new MemoryState(fail),
    archive: new MemoryLines(),
    deadLetters: new MemoryLines(),
  };
  const ingest = makeIngestTelemetry({
    ...stores,
    options: { ...DEFAULT_INGEST_OPTIONS, stateWriteConcurrency: 4, maxRetryCount: 3 },
  });
  const { bodies, triggerMetadata } = iotHubBatch(messages);
  const run = (retryCount = 0) =>
    ingest(
      bodies,
      new InvocationContext({ triggerMetadata, retryContext: { retryCount, maxRetryCount: 3 } }),
    );
  return { ...stores, run };
}

describe('ingestTelemetry failure policy', () => {
  it('parks the records of a device whose state is refused for good, and applies the others', async () => {
    const { run, stateStore, deadLetters } = setup((id) =>
      id === 'huge' ? new StateRejectedError('413') : undefined,
    );
    const summary = await run();
    expect(summary.stateRejectedDevices).toBe(1);
    expect([...stateStore.states.keys()].sort()).toEqual(['ok-1', 'ok-2']);
    const [name, lines] = [...deadLetters.blobs][0] ?? [];
    expect(name).toMatch(/^2026\/11\/23\/10\/0-2-4-h[0-9a-f]{16}\.state-rejected\.jsonl$/);
    expect(lines?.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([
      { reason: 'state-rejected', deviceId: 'huge', sequenceNumber: 2, body: { t: 2 } },
      { reason: 'state-rejected', deviceId: 'huge', sequenceNumber: 4, body: { u: 4 } },
    ]);
  });

  it('fails the invocation on a transient error so the retry policy runs the batch again', async () => {
    const { run, deadLetters } = setup((id) => (id === 'ok-2' ? new Error('socket hang up') : undefined));
    await expect(run(0)).rejects.toThrow('socket hang up');
    expect(deadLetters.blobs.size).toBe(0);
  });

  it('on the last attempt parks only the records of the device whose state write failed', async () => {
    const { run, stateStore, deadLetters } = setup((id) =>
      id === 'ok-2' ? new Error('socket hang up') : undefined,
    );
    const summary = await run(3);
    expect(summary.parked).toBe(1);
    expect([...stateStore.states.keys()].sort()).toEqual(['huge', 'ok-1']);
    const [name, parked] = [...deadLetters.blobs][0] ?? [];
    expect(deadLetters.blobs.size).toBe(1);
    expect(name).toMatch(/^2026\/11\/23\/10\/0-3-3-h[0-9a-f]{16}\.storage-failure\.jsonl$/);
    const lines = (parked ?? []).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toMatchObject([
      { reason: 'storage-failure', deviceId: 'ok-2', sequenceNumber: 3, recordIndex: 0, body: { t: 3 } },
    ]);
  });

  it('a repeated last attempt that parks another set of the same batch keeps both sets (review 2 finding 4)', async () => {
    let failing = ['huge'];
    const { run, deadLetters } = setup((id) =>
      failing.includes(id) ? new Error('socket hang up') : undefined,
    );
    expect((await run(3)).parked).toBe(2); // sequence numbers 2 and 4
    // The host runs the last attempt again (a lost checkpoint): another set fails, with the same first and last.
    failing = ['huge', 'ok-2'];
    expect((await run(3)).parked).toBe(3); // 2, 3 and 4
    failing = ['huge']; // and the first set again: found, not written twice
    expect((await run(3)).parked).toBe(2);
    const names = [...deadLetters.blobs.keys()];
    expect(names).toHaveLength(2);
    for (const name of names)
      expect(name).toMatch(/^2026\/11\/23\/10\/0-2-4-h[0-9a-f]{16}\.storage-failure\.jsonl$/);
    const parked = [...deadLetters.blobs.values()].map((lines) =>
      lines.map((l) => (JSON.parse(l) as Record<string, unknown>).sequenceNumber),
    );
    expect(parked.sort((x, y) => x.length - y.length)).toEqual([
      [2, 4],
      [2, 3, 4],
    ]);
  });

  it('on the last attempt parks only the records whose archive blob failed, and still applies the others', async () => {
    const messages: TestMessage[] = [
      { deviceId: 'a', sequenceNumber: 1, body: Buffer.from('{"t":1}') },
      {
        deviceId: 'b',
        sequenceNumber: 2,
        body: Buffer.from('{"code":"E1"}'),
        properties: { subject: 'alarms' },
      },
      { deviceId: 'a', sequenceNumber: 3, body: Buffer.from('{"t":3}') },
    ];
    const { run, archive, stateStore, deadLetters } = setup(undefined, messages);
    archive.failing = (name) => name.startsWith('alarms/');
    await expect(run(0)).rejects.toThrow('blob write refused');
    const summary = await run(3);
    expect(summary.parked).toBe(1);
    expect([...archive.blobs.keys()]).toEqual(['telemetry/2026/11/23/10/0-1-3.jsonl']);
    expect(stateStore.states.get('a')?.telemetry.t?.value).toBe(3);
    expect(stateStore.states.has('b')).toBe(false); // only its (unarchived) record concerned it
    const [name, lines] = [...deadLetters.blobs][0] ?? [];
    expect(name).toMatch(/^2026\/11\/23\/10\/0-2-2-h[0-9a-f]{16}\.storage-failure\.jsonl$/);
    expect(lines).toHaveLength(1);
    expect(lines?.[0]).toContain('"body":{"code":"E1"}');
    expect(JSON.parse(lines?.[0] ?? '')).toMatchObject({ reason: 'storage-failure', deviceId: 'b' });
  });

  it('fails the invocation, naming the loss, when even the dead letters cannot be written', async () => {
    const { run, deadLetters } = setup((id) => (id === 'ok-2' ? new Error('socket hang up') : undefined));
    deadLetters.failing = () => true;
    await expect(run(3)).rejects.toThrow('blob write refused');
  });

  it('counts streams named like Object.prototype members as plain names', async () => {
    const { run } = setup(undefined, [
      { deviceId: 'd', sequenceNumber: 1, body: { a: 1 }, properties: { 'stream-id': 'constructor' } },
    ]);
    const summary = await run();
    expect(summary.otherStreams.constructor).toBe(1);
  });
});

describe('ingestTelemetry log lines', () => {
  const run = async (fail?: (deviceId: string) => Error | undefined) => {
    const lines: { level: string; text: string }[] = [];
    const ingest = makeIngestTelemetry({
      stateStore: new MemoryState(fail),
      archive: new MemoryLines(),
      deadLetters: new MemoryLines(),
      options: { ...DEFAULT_INGEST_OPTIONS, stateWriteConcurrency: 4, maxRetryCount: 0 },
    });
    const { bodies, triggerMetadata } = iotHubBatch(FOUR_MESSAGES);
    await ingest(
      bodies,
      new InvocationContext({
        triggerMetadata,
        retryContext: { retryCount: 0, maxRetryCount: 0 },
        logHandler: (level, ...args) => lines.push({ level, text: args.map(String).join(' ') }),
      }),
    );
    return lines.filter((l) => l.text.includes('ingestTelemetry partition'));
  };

  it('writes the per-batch line at debug when nothing went wrong', async () => {
    expect(await run()).toEqual([{ level: 'debug', text: expect.stringContaining('4 messages') as unknown }]);
  });

  it('writes it at information when the batch dead-lettered something', async () => {
    const lines = await run((id) => (id === 'huge' ? new StateRejectedError('413') : undefined));
    expect(lines.map((l) => l.level)).toEqual(['information']);
  });
});
