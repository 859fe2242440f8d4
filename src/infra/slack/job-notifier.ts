import type { JobNotifier, JobRun } from '../../jobs/ports.js';

const summary = (jobId: string, run: JobRun) => {
  const s = run.statistics;
  return (
    `Job ${jobId} run ${run.run} ${run.status}: ${s.succeededCount}/${s.deviceCount} devices succeeded, ` +
    `${s.failedCount} failed` +
    (run.failureReason ? ` (${run.failureReason})` : '')
  );
};

/** Posts a one-line notice to a Slack incoming webhook; without one, logs it. Never throws. */
export class SlackJobNotifier implements JobNotifier {
  constructor(
    private readonly webhookUrl: string | undefined,
    private readonly log: (message: string) => void,
  ) {}

  async runEnded(jobId: string, run: JobRun): Promise<void> {
    const text = summary(jobId, run);
    if (!this.webhookUrl) {
      this.log(text);
      return;
    }
    try {
      const response = await fetch(this.webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text }),
        signal: AbortSignal.timeout(10_000),
      });
      if (!response.ok) this.log(`Slack refused the job notice (HTTP ${response.status}): ${text}`);
    } catch (error) {
      // The webhook URL is a secret: name the failure, never the URL.
      this.log(
        `Slack unreachable for the job notice (${error instanceof Error ? error.name : 'error'}): ${text}`,
      );
    }
  }
}
