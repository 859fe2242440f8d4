import { CosmosClient, type Container } from '@azure/cosmos';
import { DefaultAzureCredential } from '@azure/identity';
import { Agent } from 'node:https';
import type { CosmosConfig } from '../../config.js';
import { ServiceUnavailableError, ThrottledError } from '../../shared/errors.js';
import { onFirstUse } from '../lazy.js';
import { isUnreachable } from '../network-errors.js';

/** One CosmosClient per process: key auth for the local emulator, managed identity otherwise. */
export function createCosmosClient(config: CosmosConfig): CosmosClient {
  return new CosmosClient({
    endpoint: config.endpoint,
    ...(config.key ? { key: config.key } : { aadCredentials: new DefaultAzureCredential() }),
    // Only ever true for a loopback endpoint: config validation refuses it for anything else.
    ...(config.allowSelfSignedTls
      ? { agent: new Agent({ rejectUnauthorized: false, keepAlive: true }) }
      : {}),
    connectionPolicy: { enableEndpointDiscovery: !config.allowSelfSignedTls },
  });
}

/** A container handle whose database and container are created on first use when `create` is set. */
export function lazyContainer(
  client: CosmosClient,
  databaseName: string,
  containerName: string,
  options: { create: boolean; partitionKeyPath: string },
): () => Promise<Container> {
  return onFirstUse(async () => {
    if (!options.create) return client.database(databaseName).container(containerName);
    // Instances starting together race to create; a loser gets 409 and simply tries again, by which time the
    // resource exists (createIfNotExists reads first).
    for (let attempt = 1; ; attempt++) {
      try {
        const { database } = await client.databases.createIfNotExists({ id: databaseName });
        const { container } = await database.containers.createIfNotExists({
          id: containerName,
          partitionKey: { paths: [options.partitionKeyPath] },
        });
        return container;
      } catch (error) {
        if (cosmosStatus(error) !== 409 || attempt >= 5) throw error;
      }
    }
  });
}

/** The HTTP status of a Cosmos SDK error, if it carries one. */
export function cosmosStatus(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = error.code;
    return typeof code === 'number' ? code : undefined;
  }
  return undefined;
}

/** How long Cosmos DB asked us to wait, seconds: `x-ms-retry-after-ms` (the SDK's `retryAfterInMs`). */
function retryAfterSeconds(error: object): number | undefined {
  const e = error as { retryAfterInMs?: unknown; headers?: Record<string, unknown> };
  const header = e.headers?.['x-ms-retry-after-ms'];
  const ms = typeof e.retryAfterInMs === 'number' ? e.retryAfterInMs : Number(header ?? Number.NaN);
  return Number.isFinite(ms) && ms >= 0 ? Math.ceil(ms / 1000) : undefined;
}

/**
 * Cosmos DB's "not now" answers as domain errors: 429 → ThrottledError, 503/408/timeouts/refused or reset
 * connections → ServiceUnavailableError (both HTTP 503 with Retry-After; retried in triggers). Anything else is
 * returned unchanged for the adapter to judge.
 */
export function translateCosmosError(error: unknown): unknown {
  if (typeof error !== 'object' || error === null) return error;
  const status = cosmosStatus(error);
  if (status === 429)
    return new ThrottledError('Cosmos DB is throttling requests.', retryAfterSeconds(error));
  if (status === 503 || status === 408 || isUnreachable(error)) {
    const code = (error as { code?: unknown }).code;
    const reason = status ?? (typeof code === 'string' ? code : 'unreachable');
    return new ServiceUnavailableError(`Cosmos DB is unavailable (${reason}).`, retryAfterSeconds(error));
  }
  return error;
}
