/**
 * The one translation of Slack incoming-webhook answers (https://api.slack.com/messaging/webhooks#handling_errors)
 * into the outcome the notifiers act on: sent, refused for good (the channel or this message), or a transient
 * failure with Slack's Retry-After. No other module reads a Slack status or error text.
 */

/**
 * Slack's answers that no retry can fix (https://api.slack.com/messaging/webhooks#handling_errors): those about
 * the channel or the webhook refuse every message alike; the others refuse this message (its content).
 */
const CHANNEL_REFUSED =
  /\b(channel_not_found|channel_is_archived|no_service|no_team|action_prohibited|posting_to_general_channel_denied|invalid_token|team_disabled)\b/;
const MESSAGE_REFUSED = /\b(invalid_payload|invalid_blocks|no_text|too_many_attachments)\b/;
/** HTTP answers about the webhook itself (forbidden, gone), whatever the message. */
const CHANNEL_STATUSES = new Set([401, 403, 404, 410]);

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

/** Slack's answer (status and the start of its body) as an outcome; `retryAfterMs` as read by retryAfterMs. */
export function slackAnswer(status: number, text: string, retryAfterMs: number | undefined): PostResult {
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
  return {
    outcome: 'failed',
    reason: `Slack answered ${status}: ${text}`,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** A request that got no answer (timeout, refused or reset connection): a transient failure. */
export function unreachable(error: unknown): PostResult {
  // The URL is a secret: name the failure (timeout, ECONNREFUSED, …), never the request.
  return { outcome: 'failed', reason: `Slack unreachable (${networkCause(error)})` };
}

/** Retry-After (seconds, or an HTTP date), capped by `maxMs`; 1 s for a 429 that gives none. */
export function retryAfterMs(header: string | null, status: number, maxMs: number): number | undefined {
  let ms: number | undefined;
  if (header !== null && header.trim() !== '') {
    const seconds = Number(header);
    ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
    if (!Number.isFinite(ms)) ms = undefined;
  }
  if (ms === undefined && status === 429) ms = 1000;
  return ms === undefined ? undefined : Math.min(Math.max(0, ms), maxMs);
}

/** A network failure's cause, without addresses or URLs. */
function networkCause(error: unknown): string {
  if (!(error instanceof Error)) return 'error';
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timeout';
  const cause = (error as { cause?: unknown }).cause;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : error.name;
}
