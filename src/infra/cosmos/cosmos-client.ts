import { CosmosClient, type Container } from '@azure/cosmos';
import { DefaultAzureCredential } from '@azure/identity';
import { Agent } from 'node:https';
import type { CosmosConfig } from '../../config.js';
import { onFirstUse } from '../lazy.js';
import { isConflict } from './errors.js';

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
        if (!isConflict(error) || attempt >= 5) throw error;
      }
    }
  });
}
