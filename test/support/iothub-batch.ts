import { InvocationContext } from '@azure/functions';

export { iotHubBatch, type TestMessage } from '../../tools/iothub-trigger-metadata.js';

/** The library's real InvocationContext, recording what the handler logged. */
export function testContext(
  triggerMetadata: Record<string, unknown>,
  retryContext?: { retryCount: number; maxRetryCount: number },
): InvocationContext & { logs: string[] } {
  const logs: string[] = [];
  const context = new InvocationContext({
    functionName: 'ingestTelemetry',
    triggerMetadata,
    ...(retryContext ? { retryContext } : {}),
    logHandler: (level, ...args) => {
      logs.push(`${level}: ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`);
    },
  });
  return Object.assign(context, { logs });
}
