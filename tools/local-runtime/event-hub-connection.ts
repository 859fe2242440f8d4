/**
 * How the embedded runtime reaches an Event Hub: the connection an `eventHubTrigger` names (a connection string,
 * or `<setting>__fullyQualifiedNamespace` with DefaultAzureCredential, as the Functions host resolves it), the
 * SDK clients built from it, and the checkpoint store the host uses (container `azure-webjobs-eventhub` of
 * `AzureWebJobsStorage`).
 */
import { DefaultAzureCredential } from '@azure/identity';
import {
  EventHubConsumerClient,
  EventHubProducerClient,
  type CheckpointStore,
  type EventHubConsumerClientOptions,
  type PartitionOwnership,
  type Checkpoint,
} from '@azure/event-hubs';
import { BlobCheckpointStore } from '@azure/eventhubs-checkpointstore-blob';
import { ContainerClient } from '@azure/storage-blob';

/** The Functions host's checkpoint container in `AzureWebJobsStorage`. */
export const CHECKPOINT_CONTAINER = 'azure-webjobs-eventhub';

/** Where an Event Hub is: a connection string (maybe with EntityPath), or a namespace reached with an identity. */
export type EventHubTarget =
  | { kind: 'connectionString'; connectionString: string; eventHubName: string }
  | { kind: 'identity'; fullyQualifiedNamespace: string; eventHubName: string };

/** A connection string's `Key=value` parts (keys as written). */
export function connectionStringParts(connectionString: string): Map<string, string> {
  const parts = new Map<string, string>();
  for (const part of connectionString.split(';')) {
    const at = part.indexOf('=');
    if (at > 0) parts.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  return parts;
}

/** A sample placeholder (`<key>`), an empty value, or the old in-process stand-in (`sb://localhost/` without a port). */
export const isPlaceholderConnection = (value: string | undefined): boolean =>
  value === undefined || value.trim() === '' || /[<>]|sb:\/\/localhost\/?;/i.test(value);

/** A connection string of a local endpoint (the emulator's `UseDevelopmentEmulator=true`). */
export const isLocalEmulatorConnection = (value: string | undefined): boolean =>
  value !== undefined && /(^|;)\s*UseDevelopmentEmulator\s*=\s*true\s*(;|$)/i.test(value);

/** Whether a connection setting (or its `__fullyQualifiedNamespace`) is given in `settings`. */
export const connectionIsSet = (settings: Record<string, string | undefined>, setting: string): boolean =>
  !isPlaceholderConnection(settings[setting]) ||
  !isPlaceholderConnection(settings[`${setting}__fullyQualifiedNamespace`]);

/**
 * Resolves the connection setting `setting` and the hub `eventHubName` the way the host does: the setting's
 * connection string (its EntityPath, when it has one, names the hub), else `<setting>__fullyQualifiedNamespace`.
 */
export function resolveEventHubTarget(
  settings: Record<string, string | undefined>,
  setting: string,
  eventHubName: string,
): EventHubTarget {
  const connectionString = settings[setting];
  if (!isPlaceholderConnection(connectionString) && connectionString !== undefined) {
    const entityPath = connectionStringParts(connectionString).get('EntityPath');
    return { kind: 'connectionString', connectionString, eventHubName: entityPath ?? eventHubName };
  }
  const namespace = settings[`${setting}__fullyQualifiedNamespace`];
  if (!isPlaceholderConnection(namespace) && namespace !== undefined)
    return { kind: 'identity', fullyQualifiedNamespace: namespace, eventHubName };
  throw new Error(
    `The Event Hub connection '${setting}' is not set: give ${setting} (a connection string) or ${setting}__fullyQualifiedNamespace`,
  );
}

/** The consumer groups the deployed app and Stream Analytics read (infra/main.bicep): never a local run's. */
const DEPLOYED_GROUPS = { IngestConsumerGroup: 'ingest', LocalRules__ConsumerGroup: 'asa' } as const;
/** What a local run reads a real IoT Hub with instead (create them on the hub's built-in endpoint). */
export const LOCAL_DEV_GROUPS = {
  IngestConsumerGroup: 'local-dev',
  LocalRules__ConsumerGroup: 'local-dev-asa',
};

/**
 * The IoT Hub settings to keep when `given` (local.settings.json and the environment) names a real IoT Hub
 * built-in endpoint (a connection string that is neither a placeholder nor a local endpoint, or a namespace
 * for an identity): the embedded runtime then consumes it. Otherwise none (the local endpoint's stay). Its
 * consumer groups are never the deployed app's (`ingest`, `asa`, also when copied from the sample): two readers
 * of one group take partitions from each other, which would stall the deployed ingest; `local-dev` and
 * `local-dev-asa` are used unless other groups are given.
 */
export function realIotHubSettings(given: Record<string, string | undefined>): Record<string, string> {
  const names = ['IotHubEventsConnection', 'IotHubEventsConnection__fullyQualifiedNamespace'];
  const real = names.some(
    (name) => !isPlaceholderConnection(given[name]) && !isLocalEmulatorConnection(given[name]),
  );
  if (!real) return {};
  const groups = Object.fromEntries(
    (Object.keys(DEPLOYED_GROUPS) as (keyof typeof DEPLOYED_GROUPS)[]).map((name) => {
      const value = given[name]?.trim();
      const own = value !== undefined && value !== '' && value !== DEPLOYED_GROUPS[name];
      return [name, own ? value : LOCAL_DEV_GROUPS[name]];
    }),
  );
  return {
    ...Object.fromEntries(
      [...names, 'IotHubEventHubName'].flatMap((name) => {
        const value = given[name];
        return value === undefined || isPlaceholderConnection(value) ? [] : [[name, value]];
      }),
    ),
    ...groups,
  };
}

/** Where a target is, for a log line: namespace and hub, never a key. */
export function describeTarget(target: EventHubTarget): string {
  const where =
    target.kind === 'identity'
      ? target.fullyQualifiedNamespace
      : (connectionStringParts(target.connectionString).get('Endpoint') ?? '?');
  return `${where.replace(/\/$/, '')}/${target.eventHubName}`;
}

/** Without the EntityPath: the SDK refuses a hub name beside a connection string naming another one. */
const withoutEntityPath = (connectionString: string) =>
  connectionString
    .split(';')
    .filter((part) => !/^\s*EntityPath\s*=/i.test(part))
    .join(';');

/**
 * A producer for a target. A send gives up within seconds (3 tries, 10 s each at most) rather than the SDK's
 * default of minutes: a device waiting on the gateway's answer retries a 503 itself.
 */
export function producerFor(target: EventHubTarget): EventHubProducerClient {
  const options = {
    retryOptions: { maxRetries: 2, retryDelayInMs: 250, maxRetryDelayInMs: 2_000, timeoutInMs: 10_000 },
  };
  return target.kind === 'identity'
    ? new EventHubProducerClient(
        target.fullyQualifiedNamespace,
        target.eventHubName,
        new DefaultAzureCredential(),
        options,
      )
    : new EventHubProducerClient(withoutEntityPath(target.connectionString), target.eventHubName, options);
}

/** A consumer for a target and consumer group, checkpointing in `store`. */
export function consumerFor(
  target: EventHubTarget,
  consumerGroup: string,
  store: CheckpointStore,
  options: EventHubConsumerClientOptions,
): EventHubConsumerClient {
  return target.kind === 'identity'
    ? new EventHubConsumerClient(
        consumerGroup,
        target.fullyQualifiedNamespace,
        target.eventHubName,
        new DefaultAzureCredential(),
        store,
        options,
      )
    : new EventHubConsumerClient(
        consumerGroup,
        withoutEntityPath(target.connectionString),
        target.eventHubName,
        store,
        options,
      );
}

/**
 * The checkpoint store of a target: the host's blob container, created if missing. A local endpoint's
 * namespace is `localhost` whatever its port, so its checkpoints and ownerships are kept under
 * `localhost:<port>`: two endpoints on different ports (each test file has its own) never share them.
 */
export async function checkpointStoreFor(
  storageConnectionString: string,
  target: EventHubTarget,
): Promise<CheckpointStore> {
  const container = new ContainerClient(storageConnectionString, CHECKPOINT_CONTAINER);
  await container.createIfNotExists();
  const store = new BlobCheckpointStore(container);
  if (target.kind !== 'connectionString' || !isLocalEmulatorConnection(target.connectionString)) return store;
  const endpoint = connectionStringParts(target.connectionString).get('Endpoint') ?? '';
  const port = /:(\d+)\/?$/.exec(endpoint)?.[1];
  return port === undefined ? store : namespacedStore(store, (namespace) => `${namespace}:${port}`);
}

/** `store` with every namespace mapped by `rename` on the way in (and back on the way out). */
function namespacedStore(store: CheckpointStore, rename: (namespace: string) => string): CheckpointStore {
  const renamed = new Map<string, string>();
  const to = (namespace: string) => {
    const name = rename(namespace);
    renamed.set(name, namespace);
    return name;
  };
  const back = <T extends { fullyQualifiedNamespace: string }>(item: T): T => ({
    ...item,
    fullyQualifiedNamespace: renamed.get(item.fullyQualifiedNamespace) ?? item.fullyQualifiedNamespace,
  });
  return {
    listOwnership: async (namespace, hub, group) =>
      (await store.listOwnership(to(namespace), hub, group)).map(back),
    claimOwnership: async (ownerships: PartitionOwnership[]) =>
      (
        await store.claimOwnership(
          ownerships.map((o) => ({ ...o, fullyQualifiedNamespace: to(o.fullyQualifiedNamespace) })),
        )
      ).map(back),
    listCheckpoints: async (namespace, hub, group) =>
      (await store.listCheckpoints(to(namespace), hub, group)).map(back),
    updateCheckpoint: (checkpoint: Checkpoint) =>
      store.updateCheckpoint({
        ...checkpoint,
        fullyQualifiedNamespace: to(checkpoint.fullyQualifiedNamespace),
      }),
  };
}
