/**
 * The device side of IoT Hub in the embedded runtime: the device HTTPS API for telemetry
 * (`POST /devices/{id}/messages/events`, SAS-authenticated against the app's identity store) publishing to the
 * IoT Hub events hub over AMQP as IoT Hub's built-in endpoint delivers a device message, and direct methods for
 * devices that long-poll (IoT Hub delivers those over MQTT/AMQP).
 */
// A type only (@azure/event-hubs sends it but does not re-export it).
import type { AmqpAnnotatedMessage } from '@azure/core-amqp';
import type { EventHubProducerClient } from '@azure/event-hubs';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { localDeviceConnections } from '../../src/infra/local/local-device-connections.js';
import type { IdentityStore } from '../../src/provisioning/ports.js';
import { authenticateDevice } from '../../src/provisioning/sas-token.js';
import { ServiceUnavailableError } from '../../src/shared/errors.js';
import { BodyTooLarge, readBody, send, sendProblem, type RequestHandler } from './http-io.js';
import type { Logger } from './invocation-log.js';
import { formatError } from './log-format.js';

/** IoT Hub's largest device-to-cloud message (256 KiB): the gateway answers 413 above it, as IoT Hub does. */
export const MAX_DEVICE_MESSAGE_BYTES = 256 * 1024;

/** An error body as IoT Hub's device HTTPS API answers it (`Message` with the error code, `ExceptionMessage`). */
const iotHubError = (code: string, message: string) => ({
  Message: `ErrorCode:${code};${message}`,
  ExceptionMessage: `Tracking ID:${randomUUID().replaceAll('-', '')}-G:0-TimeStamp:${new Date().toISOString()}`,
});

export interface DeviceGatewayOptions {
  /** The app's identity store (the adapter the app itself uses). */
  identities: IdentityStore;
  /** The IoT Hub host name device tokens are signed for (`IotHubHostName`). */
  hostName: string;
  /** The producer of the IoT Hub built-in endpoint's hub, which telemetry is published to. */
  telemetry: EventHubProducerClient;
  log: Logger;
  /** Aborted when the runtime stops: every open long-poll is answered 204 at once. */
  stopping: AbortSignal;
  /**
   * Whether direct methods are served (default true). Beside `func start` they are not: the app sends them
   * from func's own process, whose device connections this process cannot see.
   */
  directMethods?: boolean;
}

/** What the methods routes answer when this process cannot deliver direct methods. */
export const DIRECT_METHODS_NEED_EMBEDDED =
  'Direct methods to local devices need the embedded runtime (npm start -- --embedded): under func start the app sends them from its own process.';

/** The device's identity is authenticated and enabled; otherwise the refusal has been sent. */
async function authenticate(
  options: DeviceGatewayOptions,
  req: IncomingMessage,
  res: ServerResponse,
  deviceId: string,
) {
  let verdict;
  try {
    verdict = await authenticateDevice(
      req.headers.authorization ?? '',
      { hostName: options.hostName, deviceId, nowSeconds: Math.floor(Date.now() / 1000) },
      (id) => options.identities.get(id),
    );
  } catch (error) {
    // The identity store is unavailable: that is no verdict on the token. A device SDK gives up on 401 but
    // retries a 503, so a storage outage must never look like bad credentials.
    options.log(
      `gateway: identity store unavailable (${error instanceof Error ? error.message : String(error)})`,
    );
    const unavailable =
      error instanceof ServiceUnavailableError
        ? error
        : new ServiceUnavailableError('The identity store is unavailable; retry later.');
    sendProblem(res, unavailable, req.url ?? '');
    return false;
  }
  if (verdict === 'disabled') send(res, 403, { Message: 'ErrorCode:DeviceDisabled;The device is disabled' });
  else if (verdict !== 'valid')
    send(res, 401, { Message: 'ErrorCode:IotHubUnauthorizedAccess;Unauthorized' });
  return verdict === 'valid';
}

/** `POST /devices/{id}/methods/{requestId}/response` `{ status, payload }` → 204. */
async function methodResponse(
  req: IncomingMessage,
  res: ServerResponse,
  deviceId: string,
  requestId: string,
) {
  const text = (await readBody(req, MAX_DEVICE_MESSAGE_BYTES)).toString('utf8');
  let answer: { status?: unknown; payload?: unknown };
  try {
    answer = JSON.parse(text || '{}') as typeof answer;
  } catch {
    send(res, 400, { message: 'The body is not valid JSON.' });
    return;
  }
  const status = typeof answer.status === 'number' ? answer.status : 200;
  const known = localDeviceConnections.respond(deviceId, requestId, { status, payload: answer.payload });
  send(res, known ? 204 : 404, known ? undefined : { message: 'Unknown or expired request.' });
}

/**
 * Direct methods for devices of the local run (IoT Hub delivers them over MQTT/AMQP; locally a device
 * long-polls): `GET /devices/{id}/methods/pending?waitSeconds=20` → 200 `{ requestId, name, payload }` or 204;
 * `POST /devices/{id}/methods/{requestId}/response` `{ status, payload }` → 204.
 */
function directMethods(options: DeviceGatewayOptions): RequestHandler {
  return async (req, res, path, url) => {
    const m = /^\/devices\/([^/]+)\/methods\/(pending|[^/]+\/response)$/.exec(path);
    if (!m) return false;
    if (options.directMethods === false) {
      // A long-poll that can never be answered would look like a quiet hub: say why at once.
      send(res, 501, iotHubError('NotImplemented', DIRECT_METHODS_NEED_EMBEDDED));
      return true;
    }
    const deviceId = decodeURIComponent(m[1] ?? '');
    if (!(await authenticate(options, req, res, deviceId))) return true;
    if (m[2] === 'pending' && req.method === 'GET') {
      const wait = Math.min(60, Math.max(0, Number(url.searchParams.get('waitSeconds') ?? '20') || 0));
      // Stopping answers every open long-poll 204 at once: the shutdown does not wait for devices.
      const request = await localDeviceConnections.nextRequest(deviceId, wait * 1000, options.stopping);
      if (request) send(res, 200, request);
      else send(res, 204);
    } else if (req.method === 'POST' && m[2]?.endsWith('/response')) {
      await methodResponse(req, res, deviceId, decodeURIComponent(m[2].slice(0, -'/response'.length)));
    } else {
      send(res, 405);
    }
    return true;
  };
}

/**
 * A device message as IoT Hub's built-in endpoint delivers it: the system properties IoT Hub stamps as message
 * annotations, the `iothub-app-*` headers as application properties, `iothub-messageid` and the content type
 * as AMQP properties, and the device id as partition key (IoT Hub keeps a device's messages in one partition).
 */
export function deviceMessage(req: IncomingMessage, deviceId: string, body: Buffer): AmqpAnnotatedMessage {
  const applicationProperties: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('iothub-app-') && typeof value === 'string')
      applicationProperties[name.slice('iothub-app-'.length)] = value;
  }
  const messageId = req.headers['iothub-messageid'];
  const contentType = req.headers['content-type'];
  return {
    body,
    bodyType: 'data',
    messageAnnotations: {
      'iothub-connection-device-id': deviceId,
      'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
      'iothub-enqueuedtime': new Date().toISOString(),
      'iothub-message-source': 'Telemetry',
      // A batch of annotated messages carries the first one's annotations: the partition key goes here.
      'x-opt-partition-key': deviceId,
    },
    applicationProperties,
    properties: {
      ...(typeof messageId === 'string' ? { messageId } : {}),
      ...(contentType ? { contentType } : {}),
    },
  };
}

/** IoT Hub's device HTTPS API for telemetry: `POST /devices/{id}/messages/events`. */
function telemetry(options: DeviceGatewayOptions): RequestHandler {
  return async (req, res, path) => {
    const m = /^\/devices\/([^/]+)\/messages\/events$/.exec(path);
    if (!m) return false;
    if (req.method !== 'POST') {
      send(res, 405);
      return true;
    }
    const deviceId = decodeURIComponent(m[1] ?? '');
    if (!(await authenticate(options, req, res, deviceId))) return true;
    let body: Buffer;
    try {
      body = await readBody(req, MAX_DEVICE_MESSAGE_BYTES);
    } catch (error) {
      if (!(error instanceof BodyTooLarge)) throw error;
      // IoT Hub's answer (error code 413002): its own body shape, not problem+json; nothing is kept.
      const message = `Message size exceeds the maximum of ${error.maxBytes} bytes.`;
      send(res, 413, iotHubError('MessageTooLarge', message), { connection: 'close' });
      return true;
    }
    try {
      // Acknowledged means stored: the endpoint accepts the send once the event is on disk (with a data folder).
      await options.telemetry.sendBatch([deviceMessage(req, deviceId, body)], { partitionKey: deviceId });
    } catch (error) {
      // Never 204 for a message not stored; a device SDK retries a 503 (it gives up on most 4xx).
      options.log(`gateway: publishing a message of ${deviceId} failed: ${formatError(error)}`, 'warn');
      send(res, 503, iotHubError('ServiceUnavailable', 'The events hub is unavailable; retry later.'));
      return true;
    }
    send(res, 204);
    return true;
  };
}

/** The gateway's request handlers: telemetry first, then direct methods. */
export function deviceGateway(options: DeviceGatewayOptions): RequestHandler[] {
  return [telemetry(options), directMethods(options)];
}
