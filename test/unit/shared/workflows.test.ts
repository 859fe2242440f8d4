/**
 * How a failed task reaches a Node orchestrator in Azure, and what the app shows of it. The strings are built as
 * the Durable extension builds them (TaskActivityShim, OutOfProcOrchestrationShim), around the Functions host's
 * RpcException message (`Result: <status>\nException: <message>\nStack: <stack>`), and durable-js then throws
 * `Error(Reason + ' \n ' + Details)` (TaskOrchestrationExecutor).
 */
import { describe, expect, it } from 'vitest';
import { failureMessage } from '../../../src/shared/workflows.js';

const stack =
  'Error: IoT Hub answered 503\n    at resolveTarget (file:///home/site/wwwroot/dist/src/jobs/a.js:10:5)';
const hostMessage = `Result: Failure\nException: IoT Hub answered 503\nStack: ${stack}`;
const details = JSON.stringify({
  $type: 'Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException, Microsoft.Azure.WebJobs.Script',
  ClassName: 'Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException',
  Message: hostMessage,
});
/** What durable-js throws into the orchestrator for a TaskFailed / SubOrchestrationInstanceFailed event. */
const thrown = (reason: string, eventDetails: string) => new Error(`${reason} \n ${eventDetails}`);

describe('failureMessage: the reason of a failed durable task, as Azure delivers it to Node', () => {
  it("reads an activity failure as the host reports it: Activity function '...' failed: Result: Failure...", () => {
    const error = thrown(`Activity function 'jobResolveTarget' failed: ${hostMessage}`, details);
    expect(failureMessage(error)).toBe('IoT Hub answered 503');
  });

  it('reads an activity failure already cut down by the extension (OutOfProcExceptionHelpers)', () => {
    const friendly = JSON.stringify({ ClassName: 'System.Exception', Message: 'IoT Hub answered 503' });
    const error = thrown(`Activity function 'jobResolveTarget' failed: IoT Hub answered 503`, friendly);
    expect(failureMessage(error)).toBe('IoT Hub answered 503');
  });

  it("reads a sub-orchestration failure, Orchestrator function '...' failed:, around an activity's failure", () => {
    const childError = `Activity function 'bulkProvisionChunk' failed: ${hostMessage} \n ${details}`;
    const error = thrown(
      `Orchestrator function 'bulkProvisionChunkOrchestrator' failed: ${childError}`,
      `Message: ${childError}, StackTrace:    at Microsoft.Azure.WebJobs.Script.Description.WorkerFunctionInvoker`,
    );
    expect(failureMessage(error)).toBe('IoT Hub answered 503');
  });

  it('reads an orchestrator that threw its own error', () => {
    const error = thrown(
      "Orchestrator function 'bulkProvisionChunkOrchestrator' failed: chunk 3 has no request blob",
      'Message: chunk 3 has no request blob, StackTrace: ',
    );
    expect(failureMessage(error)).toBe('chunk 3 has no request blob');
  });

  it('reads structured failure details (durable-js TaskFailedError) and plain errors and strings', () => {
    const structured = Object.assign(new Error('Error: quota exceeded'), {
      failureDetails: { errorType: 'Error', errorMessage: 'quota exceeded' },
    });
    expect(failureMessage(structured)).toBe('quota exceeded');
    expect(failureMessage(new Error('plain\nsecond line'))).toBe('plain');
    expect(failureMessage('just text')).toBe('just text');
  });

  it('never gives an empty reason: a task that threw without a message is named', () => {
    const host = thrown(
      "Activity function 'jobResolveTarget' failed: Result: Failure\nException: \nStack: Error\n    at x (a.js:1:1)",
      '{"Message":""}',
    );
    expect(failureMessage(host)).toBe("Activity function 'jobResolveTarget' failed without a message");
    const cut = thrown("Activity function 'jobResolveTarget' failed:  ", '{"Message":""}');
    expect(failureMessage(cut)).toBe("Activity function 'jobResolveTarget' failed without a message");
    expect(failureMessage(new Error(''))).toBe('The task failed without a message');
  });
});
