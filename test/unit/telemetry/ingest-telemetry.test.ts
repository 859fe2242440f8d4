import { InvocationContext } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { StateRejectedError } from '../../../src/shared/errors.js';
import { DEFAULT_INGEST_OPTIONS } from '../../../src/telemetry/ingest-options.js';
import { makeIngestTelemetry } from '../../../src/telemetry/ingest-telemetry.js';
import type { DeviceState } from '../../../src/telemetry/last-known-values.js';
import type { DeviceStateStore, JsonLinesStore } from '../../../src/telemetry/ports.js';
import { iotHubBatch, type TestMessage } from '../../support/iothub-batch.js';

// Unit tests of the handler's failure policy, with in-memory fakes typed as the ports. (Storage behaviour
// itself is covered by the integration tests against Azurite and the local Cosmos DB server.)

class MemoryLines implements JsonLinesStore {
  readonly blobs = new Map<string, string[]>();
  put(name: string, lines: readonly string[]) {
    if (this.blobs.has(name)) return Promise.resolve('exists' as const);
    this.blobs.set(name, [...lines]);
    return Promise.resolve('created' as const);
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
    expect(name).toBe('2026/11/23/10/0-2-4.state-rejected.jsonl');
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

  it('parks the whole batch on the last attempt', async () => {
    const { run, deadLetters } = setup((id) => (id === 'ok-2' ? new Error('socket hang up') : undefined));
    const summary = await run(3);
    expect(summary.batchDeadLettered).toBe(true);
    expect([...deadLetters.blobs.keys()]).toEqual(['2026/11/23/10/0-1-4.batch.jsonl']);
  });

  it('counts streams named like Object.prototype members as plain names', async () => {
    const { run } = setup(undefined, [
      { deviceId: 'd', sequenceNumber: 1, body: { a: 1 }, properties: { 'stream-id': 'constructor' } },
    ]);
    const summary = await run();
    expect(summary.otherStreams.constructor).toBe(1);
  });
});
