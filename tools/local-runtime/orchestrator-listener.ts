import { createRequire } from 'node:module';
import type { OrchestrationHandler } from 'durable-functions';
import type { OrchestratorHandler } from './durable-engine.js';

// durable-functions keeps `createOrchestrator` (what `df.app.orchestration` wraps every orchestrator with) in
// its testing utilities, outside the package index: load it from there.
const testingUtils = createRequire(import.meta.url)('durable-functions/lib/src/util/testingUtils.js') as {
  createOrchestrator: (fn: OrchestrationHandler) => OrchestratorHandler;
};

/** The library's own orchestrator listener around `fn`: exactly what `df.app.orchestration` registers. */
export const orchestratorListener = (fn: OrchestrationHandler): OrchestratorHandler =>
  testingUtils.createOrchestrator(fn);
