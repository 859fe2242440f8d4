import type { HookEvent, ProvisioningHooks } from '../../provisioning/provision-device-workflow.js';

/** Hook URLs may carry secrets in their query (`?code=…`): errors name only origin and path. */
const shown = (url: string) => {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
};

/** Calls provisioning webhooks with POST JSON, an `Idempotency-Key` header and a 10 s timeout. */
export class HttpProvisioningHooks implements ProvisioningHooks {
  async call(url: string, event: HookEvent, idempotencyKey: string): Promise<void> {
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
        body: JSON.stringify(event),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      throw new Error(`Hook ${shown(url)} unreachable (${error instanceof Error ? error.name : 'error'}).`);
    }
    await response.body?.cancel();
    if (!response.ok) throw new Error(`Hook ${shown(url)} answered HTTP ${response.status}.`);
  }
}
