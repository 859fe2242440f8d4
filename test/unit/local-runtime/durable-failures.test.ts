/**
 * Failed tasks as the local engine records them: the shapes the Durable extension gives Node orchestrators in
 * Azure (TaskActivityShim: `Activity function '<name>' failed: <host message>`, the host's RpcException message
 * being `Result: Failure\nException: <message>\nStack: <stack>`; OutOfProcOrchestrationShim: `Orchestrator function
 * '<name>' failed: <error>`), so that what the app extracts from them is tested against what Azure sends.
 */
import type { OrchestrationContext } from 'durable-functions';
import { describe, expect, it } from 'vitest';
import { failureMessage } from '../../../src/shared/workflows.js';
import { DurableEngine } from '../../../tools/local-runtime/durable-engine.js';
import { EventType } from '../../../tools/local-runtime/durable-history.js';
import { REPLAY_SCHEMAS, orchestrator } from '../../support/durable.js';

const caught = (error: unknown) => (error instanceof Error ? error.message : String(error));

describe.each(REPLAY_SCHEMAS)(
  'local durable engine: failed tasks in the Durable extension wire shape (schema %s)',
  (schema) => {
    it('records an activity failure as TaskFailed with the extension Reason around the host message', async () => {
      const flow = orchestrator(function* (context: OrchestrationContext) {
        try {
          yield context.df.callActivity('broken', null);
          return 'unexpected';
        } catch (error) {
          return { seen: caught(error), reason: failureMessage(error) };
        }
      });
      const engine = new DurableEngine({
        clock: 'virtual',
        replaySchema: schema,
        orchestrators: new Map([['flow', flow]]),
        activities: new Map([
          [
            'broken',
            () => {
              throw new RangeError('nope');
            },
          ],
        ]),
      });
      engine.start('flow', 'a1');
      const done = await engine.whenDone('a1');
      const failed = engine.executions('a1')[0]?.history.find((e) => e.EventType === EventType.TaskFailed);
      expect(String(failed?.Reason)).toMatch(
        /^Activity function 'broken' failed: Result: Failure\nException: nope\nStack: RangeError: nope\n {4}at /,
      );
      expect(JSON.parse(String(failed?.Details))).toMatchObject({
        $type: 'Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException, Microsoft.Azure.WebJobs.Script',
        Message: expect.stringMatching(/^Result: Failure\nException: nope\nStack: /) as unknown,
      });
      const output = done.output as { seen: string; reason: string };
      // durable-js: Error(Reason + ' \n ' + Details).
      expect(output.seen).toBe(`${String(failed?.Reason)} \n ${String(failed?.Details)}`);
      expect(output.reason).toBe('nope');
    });

    it("tells a parent that its sub-orchestration failed as Orchestrator function '<name>' failed: <error>", async () => {
      const child = orchestrator(function* (context: OrchestrationContext) {
        yield context.df.callActivity('broken', null);
      });
      const parent = orchestrator(function* (context: OrchestrationContext) {
        try {
          yield context.df.callSubOrchestrator('child', null, 'p1:child');
          return 'unexpected';
        } catch (error) {
          return { seen: caught(error), reason: failureMessage(error) };
        }
      });
      const engine = new DurableEngine({
        clock: 'virtual',
        replaySchema: schema,
        orchestrators: new Map([
          ['child', child],
          ['parent', parent],
        ]),
        activities: new Map([
          [
            'broken',
            () => {
              throw new Error('IoT Hub answered 503');
            },
          ],
        ]),
      });
      engine.start('parent', 'p1');
      const { seen, reason } = (await engine.whenDone('p1')).output as { seen: string; reason: string };
      expect(seen).toMatch(
        /^Orchestrator function 'child' failed: Activity function 'broken' failed: Result: Failure\nException: IoT Hub answered 503\nStack: Error: IoT Hub answered 503\n/,
      );
      expect(seen).toContain(' \n Message: Activity function ');
      expect(reason).toBe('IoT Hub answered 503');
      // The failed child's own status output, as the extension records it: the prefix once, not repeated.
      const output = String(engine.status('p1:child')?.output);
      expect(output).toMatch(/^Orchestrator function 'child' failed: Activity function 'broken' failed: /);
      expect(output.match(/Orchestrator function/g)).toHaveLength(1);
      expect(seen.match(/Orchestrator function/g)).toHaveLength(1);
    });
  },
);
