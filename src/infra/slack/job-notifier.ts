import type { JobNotifier, ScheduledJobRun } from '../../jobs/ports.js';
import type { SlackWebhook } from './slack-webhook.js';

const summary = (jobId: string, run: ScheduledJobRun) => {
  const s = run.statistics;
  return (
    `Job ${jobId} run ${run.run} ${run.status}: ${s.succeededCount}/${s.deviceCount} devices succeeded, ` +
    `${s.failedCount} failed` +
    (run.failureReason ? ` (${run.failureReason})` : '')
  );
};

/**
 * Posts a one-line notice to the Slack webhook through the instance's shared SlackWebhook (the same rate limit
 * as alerts); without a webhook, or when Slack does not take it, logs it. Never throws.
 */
export class SlackJobNotifier implements JobNotifier {
  constructor(
    private readonly webhook: SlackWebhook | undefined,
    private readonly log: (message: string) => void,
    /** How long a notice waits for its turn at the webhook, ms. */
    private readonly maxWaitMs = 10_000,
  ) {}

  async runEnded(jobId: string, run: ScheduledJobRun): Promise<void> {
    const text = summary(jobId, run);
    if (!this.webhook) {
      this.log(text);
      return;
    }
    const result = await this.webhook.post({ text }, this.maxWaitMs);
    // The reason carries Slack's answer or the failure's name, never the (secret) webhook URL.
    if (result.outcome !== 'sent') this.log(`Slack did not take the job notice (${result.reason}): ${text}`);
  }
}
