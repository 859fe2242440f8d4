import { createHmac } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import rhea from 'rhea';
import type { Connection, EventContext, Message, Receiver, Sender } from 'rhea';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventHubProducerClient, earliestEventPosition } from '@azure/event-hubs';
import { receiveFromPartition } from './sdk-helpers.js';
import { RAW_BYTES } from '../../../tools/local-eventhubs/amqp-message.js';
import { LOCAL_EVENTHUBS_KEY, LOCAL_EVENTHUBS_KEY_NAME } from '../../../tools/local-eventhubs/config.js';
import { startLocalEventHubs, type LocalEventHubs } from '../../../tools/local-eventhubs/server.js';

/**
 * The wire forms other clients use (the .NET client of the Functions host, which D probes separately): SASL
 * MSSBCBS, leading-slash addresses, pre-settled CBS requests, unquoted filters, pre-settled deliveries.
 */
let hubs: LocalEventHubs;
let connection: Connection;
let cbsSender: Sender;
const replies = new Map<string, (reply: Message) => void>();

beforeAll(async () => {
  hubs = await startLocalEventHubs({ port: 0 });
  const container = rhea.create_container({ id: 'raw-client' });
  const mssbcbs = () => ({
    start: (callback: (error: unknown, response: Buffer) => void) => {
      callback(undefined, Buffer.alloc(0));
    },
  });
  connection = container.connect({
    port: hubs.port,
    host: '127.0.0.1',
    sasl_mechanisms: { MSSBCBS: mssbcbs },
    reconnect: false,
  } as never);
  await once(connection, 'connection_open');
  const replyReceiver = connection.open_receiver({
    source: { address: '$cbs' },
    target: { address: 'cbs-reply' },
  });
  replyReceiver.on('message', (context: EventContext) => {
    const message = context.message as Message;
    replies.get(String(message.correlation_id))?.(message);
  });
  cbsSender = connection.open_sender({ target: { address: '$cbs' }, snd_settle_mode: 1 });
  await once(cbsSender, 'sendable');
});
afterAll(async () => {
  const closed = once(connection, 'connection_close');
  connection.close();
  await closed;
  await hubs.stop();
});

function once(
  emitter: { once(event: string, listener: (context: EventContext) => void): unknown },
  event: string,
) {
  return new Promise<EventContext>((resolve) => emitter.once(event, resolve));
}

function sasToken(audience: string, expirySeconds: number, key = LOCAL_EVENTHUBS_KEY): string {
  const sr = encodeURIComponent(audience);
  const sig = createHmac('sha256', key).update(`${sr}\n${expirySeconds}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expirySeconds}&skn=${LOCAL_EVENTHUBS_KEY_NAME}`;
}

let requests = 0;
async function putToken(audience: string, token: string): Promise<number> {
  const id = `request${++requests}`;
  const reply = new Promise<Message>((resolve) => replies.set(id, resolve));
  cbsSender.send({
    message_id: id,
    reply_to: 'cbs-reply',
    application_properties: {
      operation: 'put-token',
      type: 'servicebus.windows.net:sastoken',
      name: audience,
    },
    body: token,
  });
  const message = await reply;
  return Number((message.application_properties as Record<string, unknown>)['status-code']);
}

/** Attaches a link and resolves with 'open' or the refusal's condition. */
async function attach(link: Sender | Receiver): Promise<string> {
  return new Promise((resolve) => {
    link.once(link.is_sender() ? 'sender_open' : 'receiver_open', (context: EventContext) => {
      // A refusal is an attach without terminus followed by a detach carrying the error.
      const remote = link.is_sender() ? context.sender?.target : context.receiver?.source;
      if (remote?.address) resolve('open');
    });
    link.once(link.is_sender() ? 'sender_error' : 'receiver_error', () => {
      resolve(String((link.error as { condition?: string } | undefined)?.condition));
    });
  });
}

const now = () => Math.floor(Date.now() / 1000);
const audience = (path: string) => `sb://localhost:${hubs.port}/${path}`;

describe('local Event Hubs endpoint: the raw AMQP wire', () => {
  it('refuses a link before any token, with a token for another hub, and an expired or mis-signed token', async () => {
    expect(await attach(connection.open_sender({ target: { address: '/iothub-events' } }))).toBe(
      'amqp:unauthorized-access',
    );
    expect(await putToken(audience('anomalies'), sasToken(audience('anomalies'), now() + 600))).toBe(202);
    expect(await attach(connection.open_sender({ target: { address: '/iothub-events' } }))).toBe(
      'amqp:unauthorized-access',
    );
    expect(await putToken(audience('iothub-events'), sasToken(audience('iothub-events'), now() - 1))).toBe(
      401,
    );
    expect(
      await putToken(audience('iothub-events'), sasToken(audience('iothub-events'), now() + 600, 'b3RoZXI=')),
    ).toBe(401);
    expect(await putToken(audience('iothub-events'), sasToken(audience('anomalies'), now() + 600))).toBe(401);
    expect(await attach(connection.open_sender({ target: { address: '/iothub-events/Partitions/0' } }))).toBe(
      'amqp:unauthorized-access',
    );
  });

  it('takes plain (format 0) messages on a leading-slash address and serves unquoted and sequence filters pre-settled', async () => {
    expect(await putToken(audience('iothub-events'), sasToken(audience('iothub-events'), now() + 600))).toBe(
      202,
    );
    const sender = connection.open_sender({ target: { address: '/iothub-events/Partitions/1' } });
    expect(await attach(sender)).toBe('open');
    for (let i = 0; i < 3; i++) {
      const delivery = sender.send({
        body: `event-${i}`,
        message_annotations: { 'iothub-connection-device-id': 'raw-device', 'x-opt-sequence-number': 999 },
      });
      const settled = await new Promise<string>((resolve) => {
        sender.once('accepted', (context: EventContext) => {
          if (context.delivery === delivery) resolve('accepted');
        });
        sender.once('rejected', () => {
          resolve('rejected');
        });
      });
      expect(settled).toBe('accepted');
    }
    for (const [filter, first] of [
      ['amqp.annotation.x-opt-offset > -1', 0],
      ['amqp.annotation.x-opt-sequence-number >= 1', 1],
      ['amqp.annotation.x-opt-sequence-number > 1', 2],
    ] as const) {
      const receiver = connection.open_receiver({
        source: {
          address: '/iothub-events/ConsumerGroups/$Default/Partitions/1',
          filter: { 'apache.org:selector-filter:string': rhea.types.wrap_described(filter, 0x468c00000004) },
        },
        snd_settle_mode: 1,
        credit_window: 10,
      } as never);
      const got: { body: unknown; annotations: Record<string, unknown>; settled: boolean }[] = [];
      const done = new Promise<void>((resolve) => {
        receiver.on('message', (context: EventContext) => {
          const delivery = context.delivery as unknown as { remote_settled: boolean };
          const message = context.message as Message;
          got.push({
            body: message.body,
            annotations: message.message_annotations as Record<string, unknown>,
            settled: delivery.remote_settled,
          });
          if (got.length === 3 - first) resolve();
        });
      });
      await done;
      receiver.close();
      expect(got.map((g) => g.body)).toEqual(['event-0', 'event-1', 'event-2'].slice(first));
      expect(got.every((g) => g.settled)).toBe(true);
      expect(got[0]?.annotations).toMatchObject({
        'x-opt-sequence-number': first,
        'iothub-connection-device-id': 'raw-device',
      });
    }
  });

  it('refuses a filter it does not understand instead of guessing a position', async () => {
    const receiver = connection.open_receiver({
      source: {
        address: 'iothub-events/ConsumerGroups/$Default/Partitions/0',
        filter: {
          'apache.org:selector-filter:string': rhea.types.wrap_described('1=1; DROP', 0x468c00000004),
        },
      },
    });
    expect(await attach(receiver)).toBe('amqp:invalid-field');
  });

  it('survives garbage on the socket and a malformed batch, and keeps serving other clients', async () => {
    const garbage = [
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.concat([
        Buffer.from('AMQP\x00\x01\x00\x00', 'latin1'),
        Buffer.from([0, 0, 0, 20, 2, 0, 0, 0, 0, 0x53]),
      ]),
      Buffer.concat([Buffer.from('AMQP\x03\x01\x00\x00', 'latin1'), Buffer.alloc(64, 0xff)]),
    ];
    for (const bytes of garbage) {
      await new Promise<void>((resolve) => {
        const socket = tcpConnect(hubs.port, '127.0.0.1', () => socket.end(bytes));
        socket.on('data', () => undefined);
        socket.on('close', () => {
          resolve();
        });
        socket.on('error', () => {
          resolve();
        });
      });
    }
    const sender = connection.open_sender({ target: { address: 'iothub-events/Partitions/2' } });
    expect(await attach(sender)).toBe('open');
    const outcome = (delivery: unknown) =>
      new Promise<string>((resolve) => {
        for (const event of ['accepted', 'rejected'] as const) {
          sender.once(event, (context: EventContext) => {
            if (context.delivery === delivery) resolve(event);
          });
        }
      });
    const bad = sender.send(
      rhea.message.encode({
        // One event in the envelope: a data section announcing 9 bytes and holding none.
        body: rhea.message.data_sections([Buffer.from([0x00, 0x53, 0x75, 0xb0, 0, 0, 0, 9])]) as unknown,
      }),
      undefined,
      0x80013700,
    );
    expect(await outcome(bad)).toBe('rejected');
    const trailing = sender.send(
      rhea.message.encode({
        // A whole event followed by bytes that are no AMQP section: every consumer's decoder would choke on it.
        body: rhea.message.data_sections([
          Buffer.concat([rhea.message.encode({ body: 'x' }), Buffer.from([0xde, 0xad, 0xbe, 0xef])]),
        ]) as unknown,
      }),
      undefined,
      0x80013700,
    );
    expect(await outcome(trailing)).toBe('rejected');
    const good = sender.send({ body: 'still-fine' });
    expect(await outcome(good)).toBe('accepted');
  });

  it('forgets the readers of a session that ends without detaching them (no ghost owner level)', async () => {
    expect(await putToken(audience('anomalies'), sasToken(audience('anomalies'), now() + 600))).toBe(202);
    const session = connection.create_session();
    session.begin();
    const ghost = session.open_receiver({
      source: { address: 'anomalies/ConsumerGroups/$Default/Partitions/0' },
      properties: { 'com.microsoft:epoch': rhea.types.wrap_long(5) },
      credit_window: 0,
    });
    expect(await attach(ghost)).toBe('open');
    const ended = once(session, 'session_close');
    session.close();
    await ended;
    const producer = new EventHubProducerClient(hubs.connectionString(), 'anomalies');
    try {
      await producer.sendBatch([{ body: 'after-ghost' }], { partitionId: '0' });
    } finally {
      await producer.close();
    }
    const events = await receiveFromPartition(hubs.connectionString(), 'anomalies', '0', 1, {
      startPosition: earliestEventPosition,
      ownerLevel: 1,
      timeoutMs: 10_000,
    });
    expect(events.map((e): unknown => e.body)).toEqual(['after-ghost']);
  });

  it('stores a plain (format 0) message byte for byte: application property types survive', async () => {
    expect(await putToken(audience('replay'), sasToken(audience('replay'), now() + 600))).toBe(202);
    const sender = connection.open_sender({ target: { address: 'replay/Partitions/3' } });
    expect(await attach(sender)).toBe('open');
    sender.send({
      body: 'typed',
      application_properties: {
        l: rhea.types.wrap_long(5),
        d: rhea.types.wrap_double(2),
        s: rhea.types.wrap_symbol('sym'),
      },
    });
    await once(sender, 'accepted');
    const receiver = connection.open_receiver({
      source: { address: 'replay/ConsumerGroups/$Default/Partitions/3' },
      credit_window: 10,
    });
    const message = (await once(receiver, 'message')).message as Message;
    receiver.close();
    const raw = (message as unknown as Record<symbol, Buffer | undefined>)[RAW_BYTES];
    expect(raw).toBeDefined();
    const reader = new (
      rhea.types as unknown as { Reader: new (b: Buffer) => { read(): unknown; remaining(): number } }
    ).Reader(raw as Buffer);
    const typecodes: Record<string, number> = {};
    while (reader.remaining() > 0) {
      const section = reader.read() as {
        descriptor?: { value: unknown };
        value: { type: { typecode: number }; value: unknown }[];
      };
      if (section.descriptor?.value !== 0x74) continue;
      for (let i = 0; i + 1 < section.value.length; i += 2) {
        typecodes[String(section.value[i]?.value)] = section.value[i + 1]?.type.typecode ?? -1;
      }
    }
    expect(typecodes).toEqual({ l: 0x55 /* smalllong */, d: 0x82, s: 0xa3 });
  });
});
