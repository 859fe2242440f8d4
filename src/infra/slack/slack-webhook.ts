/**
 * Slack's answers that no retry can fix (https://api.slack.com/messaging/webhooks#handling_errors): those about
 * the channel or the webhook refuse every message alike; the others refuse this message (its content).
 */
const CHANNEL_REFUSED =
  /\b(channel_not_found|channel_is_archived|no_service|no_team|action_prohibited|posting_to_general_channel_denied|invalid_token|team_disabled)\b/;
const MESSAGE_REFUSED = /\b(invalid_payload|invalid_blocks|no_text|too_many_attachments)\b/;
/** HTTP answers about the webhook itself (forbidden, gone), whatever the message. */
const CHANNEL_STATUSES = new Set([401, 403, 404, 410]);

export interface SlackWebhookOptions {
  /** The incoming webhook URL (a secret: never logged, never in a reason). */
  url: string;
  /** Minimum time between two requests to the webhook, ms (Slack allows about 1 per second). */
  minIntervalMs: number;
  /** Per-attempt timeout, ms: connecting, sending and reading the answer. */
  timeoutMs: number;
  /** Longest Retry-After honoured, ms: a longer one is cut to this (the next attempt may get another 429). */
  maxRetryAfterMs: number;
}

/** The outcome of one request to the webhook. */
export type PostResult =
  | { outcome: 'sent' }
  /**
   * Refused for good: 4xx other than 408/429, or one of Slack's permanent error codes; `scope` says whether
   * any message would be refused (`channel`: no such channel or webhook) or this one (`message`: its content).
   */
  | { outcome: 'refused'; reason: string; scope: 'channel' | 'message' }
  /** A transient failure: 5xx, 408, 429, timeout, refused or reset connection. */
  | { outcome: 'failed'; reason: string; retryAfterMs?: number }
  /** Not attempted: the webhook was busy or rate-limited for longer than the caller would wait. */
  | { outcome: 'busy'; reason: string; retryAfterMs?: number };

/**
 * One Slack incoming webhook as the instance's only way to it: every Slack request (alerts and job notices)
 * goes through `post`, so the rate limit holds for all of them. Requests go out one at a time, at least
 * `minIntervalMs` apart, and not before a (capped) Retry-After has passed. A caller waits for its turn at most
 * `maxWaitMs` and makes one attempt; retrying later is the caller's business (the alerts' outbox).
 */
export class SlackWebhook {
  private nextSlot = 0;
  private busy = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: SlackWebhookOptions) {}

  /** The per-attempt timeout, ms. */
  get timeoutMs(): number {
    return this.options.timeoutMs;
  }

  /** Posts one JSON message (with a per-attempt timeout of at most `timeoutMs`); never throws. */
  async post(body: object, maxWaitMs: number, timeoutMs = this.options.timeoutMs): Promise<PostResult> {
    if (!(await this.acquire(maxWaitMs))) {
      const wait = this.nextSlot - Date.now();
      return {
        outcome: 'busy',
        reason: this.busy ? 'Slack webhook busy' : 'Slack webhook rate-limited',
        ...(!this.busy && wait > 0 ? { retryAfterMs: wait } : {}),
      };
    }
    try {
      return await this.attempt(body, Math.min(timeoutMs, this.options.timeoutMs));
    } finally {
      this.release();
    }
  }

  /** Waits for this instance's turn at the webhook; false when it does not come within `maxWaitMs`. */
  private async acquire(maxWaitMs: number): Promise<boolean> {
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      const now = Date.now();
      if (!this.busy && this.nextSlot <= now) {
        this.busy = true;
        return true;
      }
      if (now >= deadline || (!this.busy && this.nextSlot > deadline)) return false;
      const until = this.busy ? deadline : this.nextSlot;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, until - now);
        this.waiters.add(wake);
      });
    }
  }

  private release(): void {
    this.busy = false;
    this.nextSlot = Math.max(this.nextSlot, Date.now() + this.options.minIntervalMs);
    for (const wake of [...this.waiters]) wake();
  }

  private async attempt(body: object, timeoutMs: number): Promise<PostResult> {
    let status: number;
    let text: string;
    let retryAfterHeader: string | null;
    try {
      const response = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      retryAfterHeader = response.headers.get('retry-after');
      text = (await response.text()).slice(0, 300);
    } catch (error) {
      // The URL is a secret: name the failure (timeout, ECONNREFUSED, …), never the request.
      return { outcome: 'failed', reason: `Slack unreachable (${networkCause(error)})` };
    }
    if (status >= 200 && status < 300) return { outcome: 'sent' };
    const clientError = status >= 400 && status < 500 && status !== 408 && status !== 429;
    if (CHANNEL_REFUSED.test(text) || MESSAGE_REFUSED.test(text) || clientError) {
      const channel =
        CHANNEL_REFUSED.test(text) || (CHANNEL_STATUSES.has(status) && !MESSAGE_REFUSED.test(text));
      return {
        outcome: 'refused',
        reason: `Slack refused the message (${status}): ${text}`,
        scope: channel ? 'channel' : 'message',
      };
    }
    const retryAfterMs = this.retryAfterMs(retryAfterHeader, status);
    if (retryAfterMs !== undefined) this.nextSlot = Math.max(this.nextSlot, Date.now() + retryAfterMs);
    return {
      outcome: 'failed',
      reason: `Slack answered ${status}: ${text}`,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }

  /** Retry-After (seconds, or an HTTP date), capped by `maxRetryAfterMs`; 1 s for a 429 that gives none. */
  private retryAfterMs(header: string | null, status: number): number | undefined {
    let ms: number | undefined;
    if (header !== null && header.trim() !== '') {
      const seconds = Number(header);
      ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
      if (!Number.isFinite(ms)) ms = undefined;
    }
    if (ms === undefined && status === 429) ms = 1000;
    return ms === undefined ? undefined : Math.min(Math.max(0, ms), this.options.maxRetryAfterMs);
  }
}

/** A network failure's cause, without addresses or URLs. */
function networkCause(error: unknown): string {
  if (!(error instanceof Error)) return 'error';
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timeout';
  const cause = (error as { cause?: unknown }).cause;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : error.name;
}
