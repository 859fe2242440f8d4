import { retryAfterMs, slackAnswer, unreachable, type PostResult } from './errors.js';

export type { PostResult } from './errors.js';

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
      return unreachable(error);
    }
    const result = slackAnswer(
      status,
      text,
      retryAfterMs(retryAfterHeader, status, this.options.maxRetryAfterMs),
    );
    if (result.outcome === 'failed' && result.retryAfterMs !== undefined) {
      this.nextSlot = Math.max(this.nextSlot, Date.now() + result.retryAfterMs);
    }
    return result;
  }
}
