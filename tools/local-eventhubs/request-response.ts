import rhea from 'rhea';
import type { Connection, Message, Receiver, Sender } from 'rhea';

/**
 * The reply side of `$cbs` and `$management`: a client attaches a receiver whose target address (or, for the JS
 * SDK's `$cbs` link, whose link name) is its reply-to; a reply goes to that link of this connection (queued while
 * the link has no credit).
 */
export class ReplyLinks {
  private readonly links = new Map<string, { sender: Sender; queue: Message[] }>();

  /** Registers a client's reply link (our sender). */
  add(sender: Sender): void {
    const entry = { sender, queue: [] as Message[] };
    const keys = [sender.name];
    if (sender.target.address) keys.push(sender.target.address);
    for (const key of keys) this.links.set(key, entry);
    sender.on('sendable', () => {
      this.drain(entry);
    });
    sender.on('sender_close', () => {
      for (const key of keys) if (this.links.get(key) === entry) this.links.delete(key);
    });
  }

  /** Sends `reply` to `replyTo` (dropped when no such link exists: the client went away). */
  send(replyTo: string | undefined, reply: Message): void {
    const entry = this.links.get(replyTo ?? '');
    if (!entry) return;
    entry.queue.push(reply);
    this.drain(entry);
  }

  private drain(entry: { sender: Sender; queue: Message[] }): void {
    while (entry.queue.length > 0 && entry.sender.sendable())
      entry.sender.send(entry.queue.shift() as Message);
  }
}

/** Keeps a request link (our receiver) supplied with credit: requests are small and answered at once. */
export function grantRequestCredit(receiver: Receiver): void {
  let received = 0;
  receiver.add_credit(100);
  receiver.on('message', () => {
    received++;
    if (received >= 50) {
      receiver.add_credit(received);
      received = 0;
    }
  });
}

/** A response with the service's status properties (`status-code` as an AMQP int, as the SDKs expect). */
export function response(request: Message, statusCode: number, description: string, body?: unknown): Message {
  const reply: Message = {
    body: body ?? null,
    correlation_id: request.message_id,
    to: request.reply_to,
    application_properties: {
      'status-code': rhea.types.wrap_int(statusCode),
      'status-description': description,
    },
  };
  return reply;
}

/** The per-connection state a server keeps. */
export interface ConnectionState {
  connection: Connection;
  replies: ReplyLinks;
}
