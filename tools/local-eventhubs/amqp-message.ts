import rhea from 'rhea';
import type { Typed } from 'rhea';

/** The batch envelope's message format: its body is data sections, each one whole encoded AMQP message. */
export const BATCH_MESSAGE_FORMAT = 0x80013700;

const HEADER = 0x70;
const MESSAGE_ANNOTATIONS = 0x72;
const DATA = 0x75;
const FOOTER = 0x78;

/** The parts of rhea's codec its typings leave out (lib/types.js exports them). */
interface Codec {
  Reader: new (buffer: Buffer) => { position: number; read(): Typed; remaining(): number };
  Writer: new () => { write(value: Typed): void; toBuffer(): Buffer };
  Map32(items: Typed[]): Typed;
}
const codec = rhea.types as unknown as Codec;
const SECTION_CODES: Record<string, number> = {
  'amqp:header:list': 0x70,
  'amqp:delivery-annotations:map': 0x71,
  'amqp:message-annotations:map': 0x72,
  'amqp:properties:list': 0x73,
  'amqp:application-properties:map': 0x74,
  'amqp:data:binary': 0x75,
  'amqp:amqp-sequence:list': 0x76,
  'amqp:value:*': 0x77,
  'amqp:footer:map': 0x78,
};

const PARTITION_KEY = 'x-opt-partition-key';
/** Annotations only the service sets: a sender's values for them are dropped, as Event Hubs does. */
const SERVICE_ANNOTATIONS = new Set([
  'x-opt-sequence-number',
  'x-opt-offset',
  'x-opt-enqueued-time',
  PARTITION_KEY,
]);

/** An event as the sender encoded it, split where the server's annotations go. */
export interface EncodedEvent {
  /** The message's bytes: header, delivery and message annotations, properties, application properties, body. */
  raw: Buffer;
  /** The header section's bytes (empty when none); delivery annotations are hop-by-hop and dropped. */
  header: Buffer;
  /** The sender's message annotations (typed entries, key then value), without the service's own. */
  annotations: Typed[];
  /** Where the sections after the annotations (properties onward) start in `raw`. */
  restStart: number;
  /** The sender's partition key, if it set one. */
  partitionKey: string | undefined;
}

function sectionCode(section: Typed): number {
  const descriptor = (section as unknown as { descriptor?: { value: unknown } }).descriptor;
  if (!descriptor) throw new Error('AMQP message section without a descriptor');
  const value = descriptor.value;
  if (typeof value === 'number') return value;
  if (typeof value === 'string') return SECTION_CODES[value] ?? -1;
  if (Buffer.isBuffer(value)) return Number(value.readBigUInt64BE(0));
  return -1;
}

/** Splits one encoded message into the parts the server keeps (throws on malformed bytes). */
export function splitEvent(raw: Buffer): EncodedEvent {
  const reader = new codec.Reader(raw);
  let header: Buffer = Buffer.alloc(0);
  let annotations: Typed[] = [];
  let restStart = 0;
  let partitionKey: string | undefined;
  while (reader.remaining() > 0) {
    const start = reader.position;
    const section = reader.read();
    const code = sectionCode(section);
    if (code > MESSAGE_ANNOTATIONS || code < HEADER) {
      restStart = start;
      break;
    }
    restStart = reader.position;
    if (code === HEADER) header = raw.subarray(start, reader.position);
    if (code === MESSAGE_ANNOTATIONS) {
      const entries = (section.value ?? []) as Typed[];
      annotations = [];
      for (let i = 0; i + 1 < entries.length; i += 2) {
        const key = entries[i] as Typed;
        const value = entries[i + 1] as Typed;
        const name = String(key.value);
        if (name === PARTITION_KEY && value.value !== null && value.value !== undefined) {
          partitionKey = String(value.value);
        }
        if (!SERVICE_ANNOTATIONS.has(name)) annotations.push(key, value);
      }
    }
  }
  if (reader.position > raw.length) throw new Error('truncated AMQP message');
  return { raw, header, annotations, restStart, partitionKey };
}

/**
 * Checks that `raw` is a sequence of whole, described AMQP sections (rhea's reader slices past the end of a
 * truncated buffer instead of failing). A malformed event refused here is one no receiver will choke on later.
 */
export function validateEvent(raw: Buffer): void {
  const reader = new codec.Reader(raw);
  let sections = 0;
  while (reader.remaining() > 0) {
    const code = sectionCode(reader.read());
    if (code < HEADER || code > FOOTER) throw new Error('unknown AMQP message section');
    if (reader.position > raw.length) throw new Error('truncated AMQP message');
    sections++;
  }
  if (sections === 0) throw new Error('empty AMQP message');
}

/** The service's annotations of a stored event. */
export interface ServiceAnnotations {
  sequenceNumber: number;
  offset: number;
  enqueuedTimeMs: number;
  partitionKey: string | undefined;
}

/** The bytes delivered to a receiver: the sender's message with the service's annotations first. */
export function renderDelivery(event: EncodedEvent, stamp: ServiceAnnotations): Buffer {
  const t = rhea.types;
  const entries: Typed[] = [
    t.wrap_symbol('x-opt-sequence-number'),
    t.wrap_long(stamp.sequenceNumber),
    t.wrap_symbol('x-opt-offset'),
    t.wrap_string(String(stamp.offset)),
    t.wrap_symbol('x-opt-enqueued-time'),
    t.wrap_timestamp(stamp.enqueuedTimeMs),
  ];
  if (stamp.partitionKey !== undefined)
    entries.push(t.wrap_symbol(PARTITION_KEY), t.wrap_string(stamp.partitionKey));
  for (const entry of event.annotations) entries.push(entry);
  const section = t.described(t.wrap_ulong(MESSAGE_ANNOTATIONS), codec.Map32(entries)) as Typed;
  const writer = new codec.Writer();
  writer.write(section);
  return Buffer.concat([event.header, writer.toBuffer(), event.raw.subarray(event.restStart)]);
}

/** The events inside a batch envelope (format 0x80013700), each one encoded message. */
export function unpackBatch(envelope: Buffer): { events: Buffer[]; partitionKey: string | undefined } {
  const outer = splitEvent(envelope);
  const reader = new codec.Reader(envelope);
  reader.position = outer.restStart;
  const events: Buffer[] = [];
  while (reader.remaining() > 0) {
    const section = reader.read();
    const code = sectionCode(section);
    if (code === DATA && Buffer.isBuffer(section.value)) events.push(section.value);
  }
  return { events, partitionKey: outer.partitionKey };
}

/** Where a decoded message keeps the bytes it was decoded from (see keepDecodedBytes). */
export const RAW_BYTES = Symbol.for('local-eventhubs.rawBytes');

/**
 * rhea decodes every plain (format 0) transfer into JS values before our handler sees it, and encoding those
 * again changes AMQP types (long 5 becomes uint, double 2.0 uint, symbol string). So that such events are stored
 * byte for byte, rhea's decoder is wrapped once to keep its input under a non-enumerable symbol.
 */
export function keepDecodedBytes(): void {
  const codecModule = rhea.message as unknown as {
    decode: (buffer: Buffer) => rhea.Message;
    [RAW_BYTES]?: true;
  };
  if (codecModule[RAW_BYTES]) return;
  const decode = codecModule.decode.bind(codecModule);
  codecModule.decode = (buffer: Buffer) => {
    const message = decode(buffer);
    Object.defineProperty(message, RAW_BYTES, { value: buffer, enumerable: false });
    return message;
  };
  codecModule[RAW_BYTES] = true;
}

/** The bytes of a plain message as sent (re-encoded only if rhea's decoder was not wrapped). */
export function plainMessageBytes(message: rhea.Message): Buffer {
  const raw = (message as unknown as { [RAW_BYTES]?: Buffer })[RAW_BYTES];
  return raw ?? rhea.message.encode(message);
}
