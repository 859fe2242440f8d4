import rhea from 'rhea';
import type { AmqpError, Delivery, EventContext, Message, Receiver, Sender } from 'rhea';
import {
  BATCH_MESSAGE_FORMAT,
  plainMessageBytes,
  renderDelivery,
  splitEvent,
  unpackBatch,
  validateEvent,
} from './amqp-message.js';
import { choosePartition, partitionIndex, type Hub } from './hubs.js';
import type { PartitionLog } from './partition-log.js';
import { parseStartFilter, SELECTOR_FILTER } from './filters.js';

/** Largest message (or batch envelope) a sender may send, as Event Hubs Standard: 1 MiB. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Credit a sending client gets; topped up as its events are stored. */
const INCOMING_CREDIT = 1000;
const EPOCH_PROPERTY = 'com.microsoft:epoch';

/** Refuses a link the way the service does: the attach goes out without terminus, then a detach with the error. */
export function refuse(link: Sender | Receiver, condition: string, description: string): void {
  link.close({ condition, description });
}

/** The fields of our own attach frame that rhea leaves for us to set. */
interface LocalAttach {
  max_message_size: number;
  properties: unknown;
}

interface Incoming {
  hub: Hub;
  partition: number | undefined;
}

/** Accepts a client's sender link to `<hub>` or `<hub>/Partitions/<id>` and stores what it sends. */
export function acceptEventSender(receiver: Receiver, target: Incoming, log: (line: string) => void): void {
  // A plain number: the .NET client sizes its batches from it (rhea cannot encode a wrapped ulong here).
  (receiver as unknown as { local: { attach: LocalAttach } }).local.attach.max_message_size =
    MAX_MESSAGE_BYTES;
  receiver.set_target({ address: receiver.target.address });
  receiver.set_source({ address: receiver.source.address });
  let stored = 0;
  receiver.add_credit(INCOMING_CREDIT);
  receiver.on('message', (context: EventContext) => {
    const delivery = context.delivery as Delivery;
    store(context, target)
      .then(() => {
        delivery.accept();
        stored++;
        if (stored >= INCOMING_CREDIT / 4) {
          receiver.add_credit(stored);
          stored = 0;
        }
      })
      .catch((error: unknown) => {
        const amqp = error instanceof AmqpRefusal ? error.amqp : internalError(error, log);
        delivery.reject(amqp);
        receiver.add_credit(1);
      });
  });
}

class AmqpRefusal extends Error {
  constructor(readonly amqp: AmqpError) {
    super(amqp.description);
  }
}

function internalError(error: unknown, log: (line: string) => void): AmqpError {
  log(`local-eventhubs: storing an event failed: ${error instanceof Error ? error.message : String(error)}`);
  return { condition: 'amqp:internal-error', description: 'The event could not be stored' };
}

/** Splits a delivery into events (a batch envelope holds many), picks the partition, appends them. */
function store(context: EventContext, target: Incoming): Promise<void> {
  const format = (context as EventContext & { format?: number }).format;
  let raws: Buffer[];
  let envelopeKey: string | undefined;
  let size: number;
  try {
    if (format === BATCH_MESSAGE_FORMAT) {
      const envelope = context.message as unknown as Buffer;
      size = envelope.length;
      const unpacked = unpackBatch(envelope);
      raws = unpacked.events;
      envelopeKey = unpacked.partitionKey;
    } else if (format === undefined || format === 0) {
      const raw = plainMessageBytes(context.message as Message);
      size = raw.length;
      raws = [raw];
    } else {
      throw new AmqpRefusal({
        condition: 'amqp:not-implemented',
        description: `Message format ${format}`,
      });
    }
  } catch (error) {
    if (error instanceof AmqpRefusal) return Promise.reject(error);
    return Promise.reject(
      new AmqpRefusal({ condition: 'amqp:decode-error', description: 'Malformed message' }),
    );
  }
  if (size > MAX_MESSAGE_BYTES) {
    const description = `The message (${size} bytes) exceeds the limit of ${MAX_MESSAGE_BYTES} bytes`;
    return Promise.reject(new AmqpRefusal({ condition: 'amqp:link:message-size-exceeded', description }));
  }
  const items: { raw: Buffer; partitionKey: string | undefined }[] = [];
  for (const raw of raws) {
    let split;
    try {
      validateEvent(raw);
      split = splitEvent(raw);
    } catch {
      return Promise.reject(
        new AmqpRefusal({ condition: 'amqp:decode-error', description: 'Malformed event' }),
      );
    }
    items.push({ raw, partitionKey: envelopeKey ?? split.partitionKey });
  }
  if (items.length === 0) return Promise.resolve();
  const key = items[0]?.partitionKey;
  const index = target.partition ?? choosePartition(target.hub, key);
  return (target.hub.partitions[index] as PartitionLog).append(items);
}

/** A client's receiver on one partition of one consumer group. */
interface Reader {
  sender: Sender;
  epoch: number | undefined;
  detach(): void;
}

/** Receivers by `hub/group/partition`, for owner-level (epoch) exclusivity. */
export class Readers {
  private readonly byKey = new Map<string, Set<Reader>>();

  /** Admits a reader under the epoch rules, stealing from lower or equal owners; false when refused. */
  admit(key: string, reader: Reader): boolean {
    const current = this.byKey.get(key) ?? new Set<Reader>();
    for (const other of current) {
      if (other.epoch !== undefined && (reader.epoch === undefined || other.epoch > reader.epoch))
        return false;
    }
    if (reader.epoch !== undefined) {
      for (const other of current) {
        current.delete(other);
        other.detach();
        refuse(
          other.sender,
          'amqp:link:stolen',
          `New receiver with epoch '${reader.epoch}' was created, so this receiver was disconnected`,
        );
      }
    }
    current.add(reader);
    this.byKey.set(key, current);
    return true;
  }

  /** Forgets a reader whose link closed. */
  remove(key: string, reader: Reader): void {
    this.byKey.get(key)?.delete(reader);
  }
}

/** Serves a client's receiver link `<hub>/ConsumerGroups/<group>/Partitions/<id>` with credit-based flow. */
export function acceptEventReceiver(
  sender: Sender,
  source: { hub: Hub; group: string; partition: string },
  readers: Readers,
): (() => void) | undefined {
  const index = partitionIndex(source.hub, source.partition);
  const log = index === undefined ? undefined : source.hub.partitions[index];
  if (!log || !source.hub.consumerGroups.has(source.group.toLowerCase())) {
    refuse(sender, 'amqp:not-found', `The messaging entity '${sender.source.address}' could not be found.`);
    return undefined;
  }
  const filter = (sender.source as { filter?: Record<string, unknown> }).filter;
  let cursor: number;
  try {
    cursor = parseStartFilter(filter?.[SELECTOR_FILTER], log);
  } catch (error) {
    refuse(sender, 'amqp:invalid-field', error instanceof Error ? error.message : 'Invalid filter');
    return undefined;
  }
  const epochValue: unknown = (sender.properties as Record<string, unknown> | undefined)?.[EPOCH_PROPERTY];
  const epoch =
    typeof epochValue === 'number' ? epochValue : epochValue === undefined ? undefined : Number(epochValue);
  const key = `${source.hub.name.toLowerCase()}/${source.group.toLowerCase()}/${source.partition}`;
  let unsubscribe: () => void = () => undefined;
  const reader: Reader = {
    sender,
    epoch,
    detach: () => {
      unsubscribe();
    },
  };
  if (!readers.admit(key, reader)) {
    refuse(sender, 'amqp:link:stolen', `A receiver with a higher epoch is connected to '${key}'`);
    return undefined;
  }
  sender.set_source({ address: sender.source.address, ...(filter ? { filter } : {}) });
  sender.set_target({ address: sender.target.address });
  const attach = (sender as unknown as { local: { attach: LocalAttach } }).local.attach;
  if (epoch !== undefined) attach.properties = { [EPOCH_PROPERTY]: rhea.types.wrap_long(epoch) };
  const pump = (): void => {
    if (!sender.is_open()) return;
    // Not before our attach is on the wire: rhea writes a session's transfers ahead of a pending attach, and a
    // client that sent attach and flow together (the .NET one) would get transfers on a handle it does not know
    // yet and end the session (amqp:session:unattached-handle). The setImmediate pump runs after the attach.
    if ((sender as unknown as { state: { open_requests: number } }).state.open_requests > 0) return;
    if (cursor < log.firstSequence) cursor = log.firstSequence;
    while (sender.sendable()) {
      const event = log.at(cursor);
      if (!event) break;
      sender.send(renderDelivery(splitEvent(event.raw), event), undefined, 0);
      cursor++;
    }
    if ((sender as unknown as { _draining?: boolean })._draining && sender.sendable())
      sender.set_drained(true);
  };
  unsubscribe = log.onAppend(pump);
  const closed = (): void => {
    unsubscribe();
    readers.remove(key, reader);
  };
  sender.on('sendable', pump);
  sender.on('sender_draining', pump);
  sender.on('settled', pump);
  sender.on('sender_close', closed);
  sender.on('sender_error', closed);
  setImmediate(pump);
  return closed;
}
