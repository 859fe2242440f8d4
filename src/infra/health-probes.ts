import type { CosmosClient } from '@azure/cosmos';
import type { TableClient } from '@azure/data-tables';
import type { BlobServiceClient } from '@azure/storage-blob';
import { request as httpsRequest } from 'node:https';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { HealthProbe } from '../health/health.js';
import { isNotFound } from './storage/errors.js';

/** A row no identity has: the table probe reads it and expects "not found" (the table may not exist yet either). */
const PROBE_PARTITION = 'health-probe-never-a-device';

/** The Cosmos DB account answers (the account read every SDK client makes first; no database needed). */
export const cosmosProbe = (client: CosmosClient): HealthProbe => ({
  name: 'cosmos',
  check: async (abortSignal) => {
    await client.getDatabaseAccount({ abortSignal });
  },
});

/** Blob storage answers for the raw archive container (exists() is a cheap HEAD; 404 still means reachable). */
export const blobProbe = (service: BlobServiceClient, containerName: string): HealthProbe => ({
  name: 'blob',
  check: async (abortSignal) => {
    await service.getContainerClient(containerName).exists({ abortSignal });
  },
});

/** Where the identity store lives: the Table storage table of the local run, or the IoT Hub registry. */
export type IdentityStoreTarget =
  { kind: 'table'; table: TableClient } | { kind: 'iothub'; hostName: string };

/**
 * The identity store answers, cheaply and cancellably: for Table storage one point read of a row that does not
 * exist (404 means reachable); for IoT Hub one HTTPS request without credentials, which the hub refuses before
 * any registry operation (a registry read would spend the hub's throttled registry quota on every probe, and
 * the anonymous health endpoint would let anyone spend it). Either request is aborted with the probe.
 */
export const identityStoreProbe = (target: IdentityStoreTarget): HealthProbe => ({
  name: 'identityStore',
  check:
    target.kind === 'table'
      ? async (abortSignal) => {
          try {
            await target.table.getEntity(PROBE_PARTITION, 'identity', { abortSignal });
          } catch (error) {
            if (!isNotFound(error)) throw error;
          }
        }
      : (signal) => httpsAnswers(target.hostName, signal),
});

/** Resolves when the host answers an HTTPS request for `/` with any status below 500. */
function httpsAnswers(hostName: string, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const request = httpsRequest(
      { host: hostName, port: 443, path: '/', method: 'GET', signal },
      (response) => {
        response.resume();
        if ((response.statusCode ?? 500) < 500) resolve();
        else reject(new Error('The identity store answered with a server error.'));
      },
    );
    // Errors carry the host name: replace them, like the Slack probe does.
    request.once('error', () => {
      reject(new Error('The identity store is unreachable.'));
    });
    request.end();
  });
}

/**
 * The Slack webhook's host accepts a connection (TLS handshake for https): no HTTP request, so no message is
 * ever posted, and the URL (a secret) goes nowhere but into the connect call.
 */
export const slackProbe = (webhookUrl: string): HealthProbe => ({
  name: 'slack',
  check: (signal) => {
    const url = new URL(webhookUrl);
    const secure = url.protocol === 'https:';
    const port = Number(url.port || (secure ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return new Promise<void>((resolve, reject) => {
      const socket: Socket = secure
        ? connectTls({ host, port, servername: host }, () => {
            socket.destroy();
            resolve();
          })
        : connectTcp({ host, port }, () => {
            socket.destroy();
            resolve();
          });
      // Errors carry the host name: replace them, so nothing about the webhook leaves this function.
      socket.once('error', () => {
        reject(new Error('Slack webhook host unreachable.'));
      });
      signal.addEventListener('abort', () => {
        socket.destroy();
        reject(new Error('Slack webhook host did not answer in time.'));
      });
    });
  },
});

/** Every dependency of the app, Slack only when a webhook is configured. */
export function createHealthProbes(deps: {
  cosmos: CosmosClient;
  blobs: BlobServiceClient;
  rawArchiveContainer: string;
  identityStore: IdentityStoreTarget;
  slackWebhookUrl: string | undefined;
}): HealthProbe[] {
  return [
    cosmosProbe(deps.cosmos),
    blobProbe(deps.blobs, deps.rawArchiveContainer),
    identityStoreProbe(deps.identityStore),
    ...(deps.slackWebhookUrl ? [slackProbe(deps.slackWebhookUrl)] : []),
  ];
}
