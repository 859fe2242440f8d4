/**
 * `npm run bench` (third part): bulk provisioning of 10,000 devices on the local stack (table identity store
 * on Azurite, catalog on the local Cosmos DB server, private blobs on Azurite) through the real
 * orchestrations and activities, run by the local durable engine on durable-functions' replay protocol.
 * Prints identity-store calls (target ≤ 100: one bulk call per chunk of 100), wall time, peak RSS, and
 * the time IoT Hub S1 pacing would take (durable timers run on a virtual clock here).
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../src/config.js';
import { createAdapters } from '../src/infra/adapters.js';
import {
  BULK_PROVISION,
  BULK_PROVISION_CHUNK,
  bulkProvisionChunkOrchestrator,
  bulkProvisionOrchestrator,
} from '../src/provisioning/bulk-provisioning-workflow.js';
import { makeBulkProvisioningActivities } from '../src/provisioning/bulk-provisioning-activities.js';
import type { IdentityStore } from '../src/provisioning/ports.js';
import { makeWorkflowHandlers } from '../src/provisioning/workflow-http-handlers.js';
import { DurableEngine, type ActivityHandler } from '../tools/local-runtime/durable-engine.js';
import { engineWorkflowClient } from '../tools/local-runtime/engine-workflow-client.js';
import { orchestratorListener } from '../tools/local-runtime/orchestrator-listener.js';
import { localAppSettings, startLocalServices } from '../tools/local-services.js';

const DEVICES = 10_000;

/** Counts every call the workflow makes to the identity store, by method. */
function counting(store: IdentityStore): { store: IdentityStore; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(property), (calls.get(String(property)) ?? 0) + 1);
        // eslint-disable-next-line no-restricted-syntax -- forwards one call's own arguments
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, calls };
}

const services = await startLocalServices({ inMemory: true });
try {
  console.log(
    `\nbulk provisioning: ${DEVICES.toLocaleString('en-US')} devices, Node ${process.version}, local stack`,
  );
  console.log(
    '| pacing (registry ops/min) | identity-store calls | wall time (s) | devices/s | paced duration on IoT Hub | peak RSS (MiB) |',
  );
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const opsPerMinute of [100, 100_000]) {
    const config = loadConfig({
      ...localAppSettings(services),
      IotHubEventsConnection: 'Endpoint=sb://localhost/;SharedAccessKeyName=b;SharedAccessKey=b',
      IotHubEventHubName: 'bench',
      IngestConsumerGroup: 'bench',
      CosmosDbDatabaseName: `bulk-bench-${opsPerMinute}`,
      IdentityTableName: `bulkbench${opsPerMinute}`,
    });
    const adapters = createAdapters(config);
    const { store: identities, calls } = counting(adapters.identities);
    const activities = makeBulkProvisioningActivities({
      identities,
      catalog: adapters.catalog,
      work: adapters.work,
      results: adapters.results,
      resultsContainer: config.workflows.resultsContainer,
      hostName: config.provisioning.hostName,
      cipher: adapters.keysCipher,
      keysRetentionMs: config.workflows.keysRetentionMs,
    });
    const engine = new DurableEngine({
      orchestrators: new Map([
        [BULK_PROVISION, orchestratorListener(bulkProvisionOrchestrator)],
        [BULK_PROVISION_CHUNK, orchestratorListener(bulkProvisionChunkOrchestrator)],
      ]),
      activities: new Map(Object.entries(activities) as [string, ActivityHandler][]),
      clock: 'virtual',
    });
    const handlers = makeWorkflowHandlers({
      identities,
      work: adapters.work,
      results: adapters.results,
      keysCipher: adapters.keysCipher,
      hooks: [],
      registryOpsPerMinute: opsPerMinute,
      maxMetadataBytes: config.provisioning.maxMetadataBytes,
    });
    const run = randomUUID().slice(0, 8);
    const body = JSON.stringify(
      Array.from({ length: DEVICES }, (_, i) => ({
        id: `bench-${run}-${i}`,
        metadata: { model: 'm1', index: i },
      })),
    );
    const virtualStart = engine.now().getTime();
    const started = performance.now();
    const response = await handlers.startBulkProvisioning(
      { params: {}, query: new URLSearchParams(), headers: new Headers(), text: () => Promise.resolve(body) },
      engineWorkflowClient(engine),
    );
    const instanceId = (response.jsonBody as { id: string }).id;
    const done = await engine.whenDone(instanceId);
    const seconds = (performance.now() - started) / 1000;
    const output = done.output as { created: number; failed: number };
    if (done.runtimeStatus !== 'Completed' || output.created !== DEVICES) {
      console.error(done);
      process.exitCode = 1;
    }
    const identityCalls = [...calls.values()].reduce((a, b) => a + b, 0);
    const detail = [...calls.entries()].map(([m, n]) => `${m} ${n}`).join(', ');
    const pacedMinutes = (engine.now().getTime() - virtualStart) / 60_000;
    const rss = process.resourceUsage().maxRSS / 1024;
    console.log(
      `| ${opsPerMinute.toLocaleString('en-US')} | ${identityCalls} (${detail}) | ${seconds.toFixed(1)} | ${Math.round(DEVICES / seconds).toLocaleString('en-US')} | ${pacedMinutes.toFixed(0)} min | ${rss.toFixed(0)} |`,
    );
    if (identityCalls > 100) process.exitCode = 1;
  }
  console.log('\npeak RSS is the process maximum so far (both runs and the in-process Cosmos DB server).');
} finally {
  await services.stop();
}
