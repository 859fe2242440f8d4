import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalDeviceConnections } from '../../../src/infra/local/local-device-connections.js';

// Direct methods of the local run expire as IoT Hub's do (issue 13, item 5): a request nobody polls does not
// wait in the queue forever. Fake timers: the test moves the clock, nothing is timed.
describe('local direct methods: expiry', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A device that polled once (connected) and is between polls now. */
  async function connectedDevice(connections: LocalDeviceConnections, deviceId: string) {
    const poll = connections.nextRequest(deviceId, 1000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await poll).toBeUndefined();
  }

  it('a queued request that is not answered within responseTimeoutInSeconds is a 504 and leaves the queue', async () => {
    const connections = new LocalDeviceConnections();
    await connectedDevice(connections, 'd1');
    const result = connections.invoke('d1', { name: 'reboot', responseTimeoutInSeconds: 5 });
    expect(connections.size()).toEqual({ pending: 1, queuedDevices: 1 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(await result).toMatchObject({ status: 504 });
    expect(connections.size()).toEqual({ pending: 0, queuedDevices: 0 });
    // The device's next poll does not get the expired request.
    const next = connections.nextRequest('d1', 0);
    await vi.advanceTimersByTimeAsync(0);
    expect(await next).toBeUndefined();
  });

  it('a device that is not connected: 404 at once, or after connectTimeoutInSeconds if it does not poll', async () => {
    const connections = new LocalDeviceConnections();
    expect(await connections.invoke('gone', { name: 'reboot', responseTimeoutInSeconds: 30 })).toMatchObject({
      status: 404,
    });
    const waiting = connections.invoke('gone', {
      name: 'reboot',
      responseTimeoutInSeconds: 30,
      connectTimeoutInSeconds: 10,
    });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(await waiting).toMatchObject({ status: 404 });
    expect(connections.size()).toEqual({ pending: 0, queuedDevices: 0 });
  });

  it('a device that connects within connectTimeoutInSeconds gets the request and its answer counts', async () => {
    const connections = new LocalDeviceConnections();
    const result = connections.invoke('late', {
      name: 'blink',
      responseTimeoutInSeconds: 30,
      connectTimeoutInSeconds: 10,
    });
    await vi.advanceTimersByTimeAsync(3000);
    const request = await connections.nextRequest('late', 1000);
    expect(request?.name).toBe('blink');
    await vi.advanceTimersByTimeAsync(9000); // past the connect timeout: delivered, so no 404
    expect(
      connections.respond('late', request?.requestId ?? '', { status: 200, payload: { ok: true } }),
    ).toBe(true);
    expect(await result).toEqual({ status: 200, payload: { ok: true } });
    expect(connections.size()).toEqual({ pending: 0, queuedDevices: 0 });
  });
});
