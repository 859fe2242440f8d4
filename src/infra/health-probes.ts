import type { CosmosClient } from '@azure/cosmos';
import type { BlobServiceClient } from '@azure/storage-blob';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { HealthProbe } from '../health/health.js';
import type { IdentityStore } from '../provisioning/ports.js';

/** A device id no device has: the identity-store probe looks it up and expects "not found". */
const PROBE_DEVICE_ID = 'health-probe-never-a-device';

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

/** The identity store answers a look-up (of a device that does not exist) through its own port. */
export const identityStoreProbe = (identities: IdentityStore): HealthProbe => ({
  name: 'identityStore',
  check: async () => {
    await identities.get(PROBE_DEVICE_ID);
  },
});

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
  identities: IdentityStore;
  slackWebhookUrl: string | undefined;
}): HealthProbe[] {
  return [
    cosmosProbe(deps.cosmos),
    blobProbe(deps.blobs, deps.rawArchiveContainer),
    identityStoreProbe(deps.identities),
    ...(deps.slackWebhookUrl ? [slackProbe(deps.slackWebhookUrl)] : []),
  ];
}
