import type { Server, Socket } from 'node:net';
import rhea from 'rhea';
import type { Connection, Delivery, EventContext, Message, Receiver, Sender, Session } from 'rhea';
import { parseAddress } from './addresses.js';
import { keepDecodedBytes } from './amqp-message.js';
import { answerPutToken, ConnectionAuth, type SharedAccessKey } from './cbs.js';
import {
  LOCAL_EVENT_HUBS,
  LOCAL_EVENTHUBS_KEY,
  LOCAL_EVENTHUBS_KEY_NAME,
  localEventHubsConnectionString,
  type LocalHubConfig,
} from './config.js';
import { lockFolder } from './folder-lock.js';
import { Namespace, partitionIndex } from './hubs.js';
import { acceptEventReceiver, acceptEventSender, Readers, refuse } from './links.js';
import { answerManagement } from './management.js';
import { grantRequestCredit, ReplyLinks } from './request-response.js';

export interface LocalEventHubsOptions {
  /** TCP port on 127.0.0.1; 0 (default) = a free port; `npm start` passes 5672. */
  port?: number;
  /** The hubs, their partition counts and consumer groups; default LOCAL_EVENT_HUBS. */
  hubs?: readonly LocalHubConfig[];
  /** Persist events here (one append-only file per partition); undefined = in memory only. */
  folder?: string;
  /** Per-partition retention; defaults: 24 h and 16 MiB. */
  retention?: { maxAgeMs?: number; maxBytesPerPartition?: number };
  /** Where operational lines go (never a token or key). */
  log?: (line: string) => void;
}

export interface LocalEventHubs {
  port: number;
  /** The emulator-style connection string of this endpoint (with `EntityPath` when `hub` is given). */
  connectionString(hub?: string): string;
  /** Events kept in memory, all hubs and partitions (the soak watches it stay bounded). */
  retained(): number;
  /** Closes every connection and the files (idempotent). */
  stop(): Promise<void>;
}

const DEFAULT_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
const RETENTION_SWEEP_MS = 30_000;

interface ConnectionState {
  auth: ConnectionAuth;
  replies: ReplyLinks;
  /** Per open partition reader: its cleanup and the session it lives in. */
  cleanups: Map<() => void, Session>;
}

/** A size for a log line. */
const sizeText = (bytes: number) =>
  bytes >= 1048576 ? `${Math.round(bytes / 1048576)} MiB` : `${Math.round(bytes / 1024)} KiB`;

/**
 * Starts an Event Hubs-compatible AMQP 1.0 endpoint on 127.0.0.1 (plain TCP, as the emulator): `@azure/event-hubs`
 * and the Functions host connect with `connectionString()` (`UseDevelopmentEmulator=true`). See ADR 0012.
 */
export async function startLocalEventHubs(options: LocalEventHubsOptions = {}): Promise<LocalEventHubs> {
  const log = options.log ?? (() => undefined);
  const retention = {
    maxAgeMs: options.retention?.maxAgeMs ?? DEFAULT_MAX_AGE_MS,
    maxBytes: options.retention?.maxBytesPerPartition ?? DEFAULT_MAX_BYTES,
    onSizeDrop: (dropped: number, partition: string) => {
      log(
        `local Event Hubs: ${partition} dropped ${dropped} events by its size bound (${sizeText(options.retention?.maxBytesPerPartition ?? DEFAULT_MAX_BYTES)} per partition) before their time; a consumer group behind them skips them`,
      );
    },
  };
  const unlock = options.folder === undefined ? () => Promise.resolve() : await lockFolder(options.folder);
  const namespace = await Namespace.open(options.hubs ?? LOCAL_EVENT_HUBS, retention, options.folder).catch(
    async (error: unknown) => {
      await unlock();
      throw error;
    },
  );
  const key: SharedAccessKey = { keyName: LOCAL_EVENTHUBS_KEY_NAME, key: LOCAL_EVENTHUBS_KEY };
  keepDecodedBytes();
  const container = rhea.create_container({ id: 'local-eventhubs' });
  // The SDKs open SASL ANONYMOUS (JS) or MSSBCBS (.NET) and then authorize through $cbs.
  const mechanisms = container.sasl_server_mechanisms as {
    enable_anonymous(): void;
    MSSBCBS?: () => unknown;
  };
  mechanisms.enable_anonymous();
  mechanisms.MSSBCBS = () => ({ outcome: true, username: undefined, start: () => undefined });
  const states = serveConnections(container, namespace, key, log);

  const sockets = new Set<Socket>();
  const server = await listen(container, options.port ?? 0, sockets).catch(async (error: unknown) => {
    await namespace.close(); // e.g. EADDRINUSE: release the partition files before failing
    await unlock();
    throw error;
  });
  const port = (server.address() as { port: number }).port;
  const sweep = setInterval(() => {
    namespace.enforceRetention();
  }, RETENTION_SWEEP_MS);
  sweep.unref();
  log(`local-eventhubs: listening on 127.0.0.1:${port} (${options.folder ? 'persistent' : 'in memory'})`);

  let stopping: Promise<void> | undefined;
  return {
    port,
    connectionString: (hub?: string) => localEventHubsConnectionString(port, hub),
    retained: () => namespace.retained(),
    stop: () => {
      stopping ??= (async () => {
        clearInterval(sweep);
        const closed = new Promise<void>((resolve) =>
          server.close(() => {
            resolve();
          }),
        );
        for (const connection of states.keys()) connection.close();
        // Give clients a moment to answer the close (no ECONNRESET on their side), then cut what is left.
        for (let i = 0; i < 20 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 25));
        for (const socket of sockets) socket.destroy();
        await closed;
        await namespace.close();
        await unlock();
      })();
      return stopping;
    },
  };
}

/** Wires the container's link events to the namespace; returns the state of every open connection. */
function serveConnections(
  container: ReturnType<typeof rhea.create_container>,
  namespace: Namespace,
  key: SharedAccessKey,
  log: (line: string) => void,
): Map<Connection, ConnectionState> {
  const states = new Map<Connection, ConnectionState>();
  const readers = new Readers();
  const stateOf = (connection: Connection): ConnectionState => {
    let state = states.get(connection);
    if (!state) {
      state = { auth: new ConnectionAuth(), replies: new ReplyLinks(), cleanups: new Map() };
      states.set(connection, state);
    }
    return state;
  };
  const forget = (connection: Connection): void => {
    const state = states.get(connection);
    states.delete(connection);
    if (state) for (const cleanup of state.cleanups.keys()) cleanup();
  };

  container.on('connection_open', (context: EventContext) => {
    tolerateLateFrames(context.connection);
  });
  container.on('sender_open', (context: EventContext) => {
    mirrorSettleModes(context.sender as Sender);
    onClientReceiver(context.sender as Sender, stateOf(context.connection), namespace, readers);
  });
  container.on('receiver_open', (context: EventContext) => {
    mirrorSettleModes(context.receiver as Receiver);
    onClientSender(context.receiver as Receiver, stateOf(context.connection), namespace, key, log);
  });
  // Ending a session detaches its links without a detach frame per link (AMQP 1.0 §2.7.7): forget its readers,
  // or an owner-level reader would keep refusing every other receiver of that partition until the connection ends.
  const endSession = (context: EventContext): void => {
    const state = states.get(context.connection);
    if (!state || !context.session) return;
    for (const [cleanup, session] of state.cleanups) {
      if (session !== context.session) continue;
      cleanup();
      state.cleanups.delete(cleanup);
    }
  };
  container.on('session_close', endSession);
  container.on('session_error', endSession);
  container.on('disconnected', (context: EventContext) => {
    forget(context.connection);
  });
  container.on('connection_close', (context: EventContext) => {
    forget(context.connection);
    context.connection.close();
  });
  container.on('error', (error: unknown) => {
    log(`local-eventhubs: ${error instanceof Error ? error.message : String(error)}`);
  });
  container.on('connection_error', () => undefined);
  container.on('sender_error', () => undefined);
  container.on('receiver_error', () => undefined);
  return states;
}

interface SettleModes {
  snd_settle_mode?: number;
  rcv_settle_mode?: number;
}

/**
 * Answers an attach with the sender settle mode the client asked for. The .NET AMQP library adopts the modes of
 * the server's attach (AmqpLink.OnReceiveAttach): rhea's default answer (mixed) turns its pre-settled `$cbs` and
 * `$management` request senders unsettled, and as every request carries the same empty delivery tag the next
 * request fails ("An item with the same key has already been added"). A pre-settled client receiver (the .NET
 * consumer) also gets pre-settled events: rhea settles a send when our snd-settle-mode is settled. The receiver
 * settle mode is always first, the only one Event Hubs offers.
 */
function mirrorSettleModes(link: Sender | Receiver): void {
  const { local, remote } = link as unknown as {
    local: { attach: SettleModes };
    remote: { attach?: SettleModes };
  };
  const asked = remote.attach?.snd_settle_mode;
  if (asked !== undefined) local.attach.snd_settle_mode = asked;
  local.attach.rcv_settle_mode = 0;
}

/**
 * The .NET client ends a session and then detaches its link on that channel while closing; rhea would throw
 * ProtocolError on frames for a channel it already removed and drop the whole connection. The service ignores
 * such late frames, and so do we.
 */
function tolerateLateFrames(connection: Connection): void {
  const target = connection as unknown as Record<string, unknown> & {
    remote_channel_map: Record<number, unknown>;
  };
  for (const name of ['on_end', 'on_detach', 'on_disposition', 'on_flow']) {
    const original = target[name] as (frame: { channel: number }) => void;
    target[name] = function (this: typeof target, frame: { channel: number }): void {
      if (this.remote_channel_map[frame.channel] === undefined) return;
      original.call(this, frame);
    };
  }
}

function listen(
  container: ReturnType<typeof rhea.create_container>,
  port: number,
  sockets: Set<Socket>,
): Promise<Server> {
  return new Promise((resolve, reject) => {
    // Deliveries to clients need no per-message settlement round trip before the next; incoming events are
    // accepted only after they are stored, so autoaccept is off and credit is granted by the link handlers.
    const server = container.listen({
      port,
      host: '127.0.0.1',
      autoaccept: false,
      credit_window: 0,
    } as never);
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    server.once('listening', () => {
      resolve(server);
    });
    server.once('error', reject);
  });
}

/** A client attached a receiver: a `$cbs`/`$management` reply link or a partition reader. */
function onClientReceiver(
  sender: Sender,
  state: ConnectionState,
  namespace: Namespace,
  readers: Readers,
): void {
  const address = parseAddress(sender.source.address);
  if (address.kind === 'cbs' || address.kind === 'management') {
    sender.set_source({ address: sender.source.address });
    sender.set_target({ address: sender.target.address });
    state.replies.add(sender);
    return;
  }
  if (address.kind !== 'consumer') {
    refuse(sender, 'amqp:not-found', `The messaging entity '${sender.source.address}' could not be found.`);
    return;
  }
  // Authorization first: an unauthenticated client learns nothing about which entities exist.
  if (!state.auth.allows(sender.source.address)) {
    refuse(sender, 'amqp:unauthorized-access', 'Unauthorized access: no valid token for this address');
    return;
  }
  const hub = namespace.hub(address.hub);
  if (!hub) {
    refuse(sender, 'amqp:not-found', `The messaging entity '${address.hub}' could not be found.`);
    return;
  }
  const cleanup = acceptEventReceiver(
    sender,
    { hub, group: address.group, partition: address.partition },
    readers,
  );
  if (!cleanup) return;
  state.cleanups.set(cleanup, sender.session);
  sender.on('sender_close', () => state.cleanups.delete(cleanup));
}

/** A client attached a sender: a `$cbs`/`$management` request link or an event sender. */
function onClientSender(
  receiver: Receiver,
  state: ConnectionState,
  namespace: Namespace,
  key: SharedAccessKey,
  log: (line: string) => void,
): void {
  const address = parseAddress(receiver.target.address);
  if (address.kind === 'cbs' || address.kind === 'management') {
    receiver.set_target({ address: receiver.target.address });
    receiver.set_source({ address: receiver.source.address });
    grantRequestCredit(receiver);
    receiver.on('message', (context: EventContext) => {
      const request = context.message as Message;
      let reply: Message;
      try {
        reply =
          address.kind === 'cbs'
            ? answerPutToken(request, state.auth, key)
            : answerManagement(request, namespace, key);
      } catch (error) {
        log(
          `local-eventhubs: ${address.kind} request failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        reply = {
          body: null,
          correlation_id: request.message_id,
          application_properties: { 'status-code': rhea.types.wrap_int(500) },
        };
      }
      (context.delivery as Delivery).accept();
      state.replies.send(request.reply_to, reply);
    });
    return;
  }
  if (!state.auth.allows(receiver.target.address)) {
    refuse(receiver, 'amqp:unauthorized-access', 'Unauthorized access: no valid token for this address');
    return;
  }
  const hub = address.kind === 'hub' || address.kind === 'partition' ? namespace.hub(address.hub) : undefined;
  const partition = address.kind === 'partition' && hub ? partitionIndex(hub, address.partition) : undefined;
  if (!hub || (address.kind === 'partition' && partition === undefined)) {
    refuse(
      receiver,
      'amqp:not-found',
      `The messaging entity '${receiver.target.address}' could not be found.`,
    );
    return;
  }
  acceptEventSender(receiver, { hub, partition }, log);
}
