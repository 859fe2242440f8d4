import {
  EventHubConsumerClient,
  earliestEventPosition,
  type EventPosition,
  type ReceivedEventData,
  type SubscribeOptions,
} from '@azure/event-hubs';

/** Receives from one partition until `count` events arrived or `timeoutMs` passed; returns what arrived. */
export async function receiveFromPartition(
  connectionString: string,
  hub: string,
  partitionId: string,
  count: number,
  options: {
    consumerGroup?: string;
    startPosition?: EventPosition;
    timeoutMs?: number;
    ownerLevel?: number;
  } = {},
): Promise<ReceivedEventData[]> {
  const consumer = new EventHubConsumerClient(options.consumerGroup ?? '$Default', connectionString, hub);
  const got: ReceivedEventData[] = [];
  const errors: Error[] = [];
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, options.timeoutMs ?? 15_000);
      const subscribeOptions: SubscribeOptions = {
        startPosition: options.startPosition ?? earliestEventPosition,
        maxBatchSize: 500,
        maxWaitTimeInSeconds: 1,
        ...(options.ownerLevel === undefined ? {} : { ownerLevel: options.ownerLevel }),
      };
      consumer.subscribe(
        partitionId,
        {
          processEvents: (events) => {
            for (const event of events) got.push(event);
            if (got.length >= count) {
              clearTimeout(timer);
              resolve();
            }
            return Promise.resolve();
          },
          processError: (error) => {
            errors.push(error);
            return Promise.resolve();
          },
        },
        subscribeOptions,
      );
    });
  } finally {
    await consumer.close();
  }
  if (got.length < count && errors.length > 0) throw errors[0] as Error;
  return got;
}
