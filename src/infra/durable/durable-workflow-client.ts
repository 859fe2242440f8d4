import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import type { ApiRequest, ApiResponse } from '../../shared/api-request.js';
import type { WorkflowClient, WorkflowRuntimeStatus } from '../../shared/workflows.js';

/** WorkflowClient over the Durable Functions client binding of this invocation (`df.input.durableClient()`). */
export function durableWorkflowClient(context: InvocationContext): WorkflowClient {
  const client = df.getClient(context);
  return {
    start: async (orchestration, instanceId, input) => {
      await client.startNew(orchestration, { instanceId, input });
    },
    status: async (instanceId) => {
      try {
        const s = await client.getStatus(instanceId, { showInput: false });
        return {
          instanceId: s.instanceId,
          name: s.name,
          runtimeStatus: s.runtimeStatus as WorkflowRuntimeStatus,
          output: s.output,
          customStatus: s.customStatus,
          createdTime: new Date(s.createdTime).toISOString(),
          lastUpdatedTime: new Date(s.lastUpdatedTime).toISOString(),
        };
      } catch (error) {
        // The v3 client throws on the extension's 404 for an unknown instance.
        if (error instanceof Error && error.message.includes('HTTP 404')) return undefined;
        throw error;
      }
    },
    raiseEvent: (instanceId, eventName, data) => client.raiseEvent(instanceId, eventName, data),
  };
}

/**
 * Gives a handler that needs a WorkflowClient the Functions signature. The function must declare
 * `extraInputs: [df.input.durableClient()]`.
 */
export const withWorkflowClient =
  (handler: (request: ApiRequest, workflows: WorkflowClient) => Promise<ApiResponse>) =>
  (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> =>
    handler(request, durableWorkflowClient(context));
