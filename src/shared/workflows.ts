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

/** The prefix the Durable extension puts before an activity's or an orchestrator's failure message. */
const EXTENSION_PREFIX = /^(?:Activity|Orchestrator) function '[^']*' failed: /;
/** The Functions host's message for a worker exception (RpcException): `Result: …\nException: …\nStack: …`. */
const HOST_RESULT = 'Result: ';
const HOST_EXCEPTION = '\nException: ';
const HOST_STACK = '\nStack: ';

/** The message a failed task carries: durable-js's TaskFailedError keeps it in `failureDetails` too. */
function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const details = (error as { failureDetails?: { errorMessage?: unknown } }).failureDetails;
  return typeof details?.errorMessage === 'string' ? details.errorMessage : error.message;
}

/**
 * What an orchestrator shows of a failed task: the thrown message, first line. In Azure a failed activity
 * reaches a Node orchestrator as `Error("<Reason> \n <Details>")` where Reason is the extension's
 * `Activity function '<name>' failed: <message>` (TaskActivityShim) and, for a Node activity, <message> is the
 * host's `Result: Failure\nException: <thrown message>\nStack: <stack>` (RpcException); extension versions with
 * OutOfProcExceptionHelpers already cut that down to the thrown message. A failed sub-orchestration gives
 * `Orchestrator function '<name>' failed: <its error>` (OutOfProcOrchestrationShim), which may wrap any of these.
 * Every layer is peeled off here, so custom status, outcomes and notices show what the code threw.
 */
export function failureMessage(error: unknown): string {
  let text = messageOf(error);
  let failed = 'The task failed';
  for (let layer = 0; layer < 8; layer++) {
    const prefix = EXTENSION_PREFIX.exec(text);
    if (prefix) {
      failed = prefix[0].replace(/: $/, '');
      text = text.slice(prefix[0].length);
      continue;
    }
    const exceptionAt = text.indexOf(HOST_EXCEPTION);
    if (!text.startsWith(HOST_RESULT) || exceptionAt < 0) break;
    // As the extension's OutOfProcExceptionHelpers reads it: from "\nException: " to the first "\nStack: ".
    const start = exceptionAt + HOST_EXCEPTION.length;
    const stackAt = text.indexOf(HOST_STACK, start);
    text = stackAt < 0 ? text.slice(start) : text.slice(start, stackAt);
  }
  // A task that threw without a message: never an empty reason (the lines after it are details, not a reason).
  return text.split('\n')[0]?.trim() || `${failed} without a message`;
}
