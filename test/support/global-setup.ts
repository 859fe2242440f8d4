import type { TestProject } from 'vitest/node';
import { startLocalServices, type LocalServices } from '../../tools/local-services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    localServices: Omit<LocalServices, 'stop' | 'died' | 'abandon' | 'eventHubsRetained'>;
  }
}

/** Starts Azurite (in memory), the local Cosmos DB server and the local Event Hubs endpoint once for the whole test run. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const services = await startLocalServices({ inMemory: true });
  const { stop, died: _died, abandon: _abandon, eventHubsRetained: _retained, ...endpoints } = services;
  project.provide('localServices', endpoints);
  return () => stop();
}
