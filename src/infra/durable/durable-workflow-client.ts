import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import type { ApiRequest, ApiResponse } from '../../shared/api-request.js';
import type { WorkflowClient, WorkflowRuntimeStatus } from '../../shared/workflows.js';
import { isUnknownInstance, translateDurableError } from './errors.js';

/** WorkflowClient over the Durable Functions client binding of this invocation (`df.input.durableClient()`). */
export function durableWorkflowClient(context: InvocationContext): WorkflowClient {
  const client = df.getClient(context);
  return {
    start: async (orchestration, instanceId, input) => {
      try {
        await client.startNew(orchestration, { instanceId, input });
      } catch (error) {
        throw translateDurableError(error);
      }
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
        if (isUnknownInstance(error)) return undefined;
        throw translateDurableError(error);
      }
    },
    raiseEvent: async (instanceId, eventName, data) => {
      try {
        await client.raiseEvent(instanceId, eventName, data);
      } catch (error) {
        throw translateDurableError(error);
      }
    },
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
