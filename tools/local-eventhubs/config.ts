/** One hub of the local Event Hubs endpoint. */
export interface LocalHubConfig {
  name: string;
  partitionCount: number;
  consumerGroups: readonly string[];
}

/** The hubs of the local run: the ones the app and infra/ use. */
export const LOCAL_EVENT_HUBS: readonly LocalHubConfig[] = [
  { name: 'iothub-events', partitionCount: 4, consumerGroups: ['$Default', 'ingest', 'asa'] },
  { name: 'anomalies', partitionCount: 2, consumerGroups: ['$Default', 'notify'] },
  { name: 'replay', partitionCount: 4, consumerGroups: ['$Default', 'replay'] },
];

export const LOCAL_EVENTHUBS_KEY_NAME = 'RootManageSharedAccessKey';

/** A fixed, public, local-only key (like Azurite's development key): it guards nothing but loopback traffic. */
export const LOCAL_EVENTHUBS_KEY = 'TG9jYWxFdmVudEh1YnNEZXZlbG9wbWVudEtleTAwMDA=';

export const DEFAULT_EVENTHUBS_PORT = 5672;

/** `Endpoint=sb://localhost:{port};SharedAccessKeyName=…;SharedAccessKey=…;UseDevelopmentEmulator=true[;EntityPath={hub}]` */
export function localEventHubsConnectionString(port: number, hub?: string): string {
  const base =
    `Endpoint=sb://localhost:${port};SharedAccessKeyName=${LOCAL_EVENTHUBS_KEY_NAME};` +
    `SharedAccessKey=${LOCAL_EVENTHUBS_KEY};UseDevelopmentEmulator=true`;
  return hub === undefined ? base : `${base};EntityPath=${hub}`;
}
