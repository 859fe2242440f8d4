import { randomUUID } from 'node:crypto';
import type { DeviceMethodInvoker, DirectMethodCall, MethodResult } from '../../jobs/ports.js';

/** A direct method call as a connected device receives it. */
export interface MethodRequest {
  requestId: string;
  name: string;
  payload?: unknown;
}

/** A device counts as connected while it polls, and for this long after its last poll. */
const CONNECTED_FOR_MS = 30_000;

interface Pending {
  deviceId: string;
  request: MethodRequest;
  /** Whether a poll has taken the request (until then it waits in the device's queue). */
  delivered: boolean;
  resolve: (result: MethodResult) => void;
  timers: NodeJS.Timeout[];
}

/**
 * Devices connected to the embedded local runtime and the direct methods delivered to them (the local
 * stand-in for IoT Hub's cloud-to-device method channel). A device long-polls for requests and posts each
 * answer. As IoT Hub answers: a device that is not connected (has not polled recently) is a 404 at once, or
 * after `connectTimeoutInSeconds` if it does not poll by then; an answer that does not come within
 * `responseTimeoutInSeconds` is a 504 (GatewayTimeout). Either way the request leaves the queue: nothing waits
 * for a device forever.
 */
export class LocalDeviceConnections implements DeviceMethodInvoker {
  private readonly lastPoll = new Map<string, number>();
  private readonly queued = new Map<string, MethodRequest[]>();
  private readonly pollers = new Map<string, (request: MethodRequest | undefined) => void>();
  private readonly pending = new Map<string, Pending>();

  /**
   * The device's next method request, or undefined when none came within `waitMs` (long poll) or `signal`
   * ended the wait (the runtime stopping); a request that comes afterwards waits for the next poll.
   */
  nextRequest(deviceId: string, waitMs: number, signal?: AbortSignal): Promise<MethodRequest | undefined> {
    this.lastPoll.set(deviceId, Date.now());
    const queued = this.takeQueued(deviceId);
    if (queued) return Promise.resolve(queued);
    this.pollers.get(deviceId)?.(undefined);
    if (signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const giveUp = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', giveUp);
        if (this.pollers.get(deviceId) === done) this.pollers.delete(deviceId);
        this.lastPoll.set(deviceId, Date.now());
        resolve(undefined);
      };
      const timer = setTimeout(giveUp, waitMs);
      const done = (request: MethodRequest | undefined) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', giveUp);
        this.pollers.delete(deviceId);
        if (request) this.markDelivered(request.requestId);
        resolve(request);
      };
      this.pollers.set(deviceId, done);
      signal?.addEventListener('abort', giveUp, { once: true });
    });
  }

  /** The device's answer; false when the request is unknown or already timed out. */
  respond(deviceId: string, requestId: string, result: MethodResult): boolean {
    const pending = this.pending.get(requestId);
    if (pending?.deviceId !== deviceId) return false;
    this.finish(pending, result);
    return true;
  }

  /** Requests waiting for a device's poll or answer, and devices with requests queued (for tests and benches). */
  size(): { pending: number; queuedDevices: number } {
    return { pending: this.pending.size, queuedDevices: this.queued.size };
  }

  invoke(deviceId: string, method: DirectMethodCall): Promise<MethodResult> {
    const connectMs = Math.max(0, method.connectTimeoutInSeconds ?? 0) * 1000;
    const online =
      this.pollers.has(deviceId) || Date.now() - (this.lastPoll.get(deviceId) ?? 0) < CONNECTED_FOR_MS;
    if (!online && connectMs === 0) return Promise.resolve(notOnline());
    const request: MethodRequest = { requestId: randomUUID(), name: method.name, payload: method.payload };
    return new Promise((resolve) => {
      const pending: Pending = { deviceId, request, delivered: false, resolve, timers: [] };
      this.pending.set(request.requestId, pending);
      pending.timers.push(
        setTimeout(() => {
          this.finish(pending, { status: 504, payload: { message: 'the device did not answer in time' } });
        }, method.responseTimeoutInSeconds * 1000),
      );
      if (!online) {
        // Not connected: IoT Hub waits connectTimeoutInSeconds for the device, then answers 404.
        pending.timers.push(
          setTimeout(() => {
            if (!pending.delivered) this.finish(pending, notOnline());
          }, connectMs),
        );
      }
      const poller = this.pollers.get(deviceId);
      if (poller) poller(request);
      else this.queued.set(deviceId, [...(this.queued.get(deviceId) ?? []), request]);
    });
  }

  /** The oldest queued request still pending (expired ones have left the queue already). */
  private takeQueued(deviceId: string): MethodRequest | undefined {
    const queue = this.queued.get(deviceId);
    const request = queue?.shift();
    if (queue?.length === 0) this.queued.delete(deviceId);
    if (request) this.markDelivered(request.requestId);
    return request;
  }

  private markDelivered(requestId: string) {
    const pending = this.pending.get(requestId);
    if (pending) pending.delivered = true;
  }

  /** Ends a request once: its answer, a timeout or a 404; it leaves the queue if no poll took it. */
  private finish(pending: Pending, result: MethodResult) {
    if (this.pending.get(pending.request.requestId) !== pending) return;
    this.pending.delete(pending.request.requestId);
    for (const timer of pending.timers) clearTimeout(timer);
    const queue = this.queued.get(pending.deviceId);
    if (queue) {
      const rest = queue.filter((r) => r !== pending.request);
      if (rest.length === 0) this.queued.delete(pending.deviceId);
      else this.queued.set(pending.deviceId, rest);
    }
    pending.resolve(result);
  }
}

/** IoT Hub's answer for a device that is not connected (DeviceNotOnline, 404103). */
const notOnline = (): MethodResult => ({ status: 404, payload: { message: 'device not online' } });

/** One per process: the runtime's device gateway and the local job runner meet here. */
export const localDeviceConnections = new LocalDeviceConnections();
