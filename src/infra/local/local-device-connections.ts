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
  resolve: (result: MethodResult) => void;
  timer: NodeJS.Timeout;
}

/**
 * Devices connected to the embedded local runtime and the direct methods delivered to them (the local
 * stand-in for IoT Hub's cloud-to-device method channel). A device long-polls for requests and posts each
 * answer; a device that has not polled recently is not online (404, as IoT Hub answers), and an answer that
 * does not come within the method's response timeout is a 504 (IoT Hub's GatewayTimeout).
 */
export class LocalDeviceConnections implements DeviceMethodInvoker {
  private readonly lastPoll = new Map<string, number>();
  private readonly queued = new Map<string, MethodRequest[]>();
  private readonly pollers = new Map<string, (request: MethodRequest | undefined) => void>();
  private readonly pending = new Map<string, Pending>();

  /** The device's next method request, or undefined when none came within `waitMs` (long poll). */
  nextRequest(deviceId: string, waitMs: number): Promise<MethodRequest | undefined> {
    this.lastPoll.set(deviceId, Date.now());
    const queued = this.queued.get(deviceId)?.shift();
    if (queued) return Promise.resolve(queued);
    this.pollers.get(deviceId)?.(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.pollers.get(deviceId) === done) this.pollers.delete(deviceId);
        this.lastPoll.set(deviceId, Date.now());
        resolve(undefined);
      }, waitMs);
      const done = (request: MethodRequest | undefined) => {
        clearTimeout(timer);
        this.pollers.delete(deviceId);
        resolve(request);
      };
      this.pollers.set(deviceId, done);
    });
  }

  /** The device's answer; false when the request is unknown or already timed out. */
  respond(deviceId: string, requestId: string, result: MethodResult): boolean {
    const pending = this.pending.get(requestId);
    if (pending?.deviceId !== deviceId) return false;
    this.pending.delete(requestId);
    clearTimeout(pending.timer);
    pending.resolve(result);
    return true;
  }

  invoke(deviceId: string, method: DirectMethodCall): Promise<MethodResult> {
    const online =
      this.pollers.has(deviceId) || Date.now() - (this.lastPoll.get(deviceId) ?? 0) < CONNECTED_FOR_MS;
    if (!online) return Promise.resolve({ status: 404, payload: { message: 'device not online' } });
    const request: MethodRequest = { requestId: randomUUID(), name: method.name, payload: method.payload };
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(request.requestId);
        resolve({ status: 504, payload: { message: 'the device did not answer in time' } });
      }, method.responseTimeoutInSeconds * 1000);
      this.pending.set(request.requestId, { deviceId, resolve, timer });
      const poller = this.pollers.get(deviceId);
      if (poller) poller(request);
      else this.queued.set(deviceId, [...(this.queued.get(deviceId) ?? []), request]);
    });
  }
}

/** One per process: the runtime's device gateway and the local job runner meet here. */
export const localDeviceConnections = new LocalDeviceConnections();
