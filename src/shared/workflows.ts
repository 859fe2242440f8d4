/** Durable runtime statuses, as Durable Functions reports them. */
export type WorkflowRuntimeStatus =
  'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated' | 'ContinuedAsNew' | 'Suspended' | 'Unknown';

export interface WorkflowStatus {
  instanceId: string;
  name: string;
  runtimeStatus: WorkflowRuntimeStatus;
  output?: unknown;
  customStatus?: unknown;
  createdTime: string;
  lastUpdatedTime: string;
}

/**
 * Starts and inspects durable workflows: the Durable Functions client in Azure (`df.getClient`), or the
 * local durable engine. Inputs given to `start` end up in orchestration history: never put secrets in them.
 */
export interface WorkflowClient {
  start(orchestration: string, instanceId: string, input: unknown): Promise<void>;
  status(instanceId: string): Promise<WorkflowStatus | undefined>;
  raiseEvent(instanceId: string, eventName: string, data: unknown): Promise<void>;
}

/** A workflow's terminal statuses: nothing more will happen to it. */
export const isFinished = (status: WorkflowRuntimeStatus): boolean =>
  status === 'Completed' || status === 'Failed' || status === 'Terminated';

/**
 * What an orchestrator shows of a failed task: the first line of its message. In Azure a failed activity
 * reaches a Node orchestrator as `Error("<reason> \n <details>")`, the details being a stack trace.
 */
export const failureMessage = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).split('\n')[0]?.trim() ?? '';
