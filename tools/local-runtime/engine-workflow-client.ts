import type { WorkflowClient } from '../../src/shared/workflows.js';
import type { DurableEngine } from './durable-engine.js';

/** WorkflowClient over the local durable engine. */
export function engineWorkflowClient(engine: DurableEngine): WorkflowClient {
  return {
    start: (orchestration, instanceId, input) => engine.startDurably(orchestration, instanceId, input),
    status: (instanceId) => {
      const s = engine.status(instanceId);
      return Promise.resolve(
        s && {
          instanceId: s.instanceId,
          name: s.name,
          runtimeStatus: s.runtimeStatus,
          output: s.output,
          customStatus: s.customStatus,
          createdTime: s.createdTime.toISOString(),
          lastUpdatedTime: s.lastUpdatedTime.toISOString(),
        },
      );
    },
    raiseEvent: (instanceId, eventName, data) => {
      engine.raiseEvent(instanceId, eventName, data);
      return Promise.resolve();
    },
  };
}
