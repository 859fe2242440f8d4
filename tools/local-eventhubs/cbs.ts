import type { Message } from 'rhea';
import { resourcePath, SasRefusedError, tokenCovers, verifySasToken } from './sas.js';
import { response } from './request-response.js';

const SAS_TOKEN_TYPE = 'servicebus.windows.net:sastoken';

/** The claims a connection has put through `$cbs`: which entity paths it may use, until when. */
export class ConnectionAuth {
  private readonly grants = new Map<string, number>();

  /** True when a valid, unexpired token covers the link address. */
  allows(address: string, nowMs = Date.now()): boolean {
    const path = resourcePath(address);
    for (const [granted, expiresAtMs] of this.grants) {
      if (expiresAtMs > nowMs && tokenCovers(granted, path)) return true;
    }
    return false;
  }

  /** Records a verified claim. */
  grant(path: string, expiresAtMs: number): void {
    this.grants.set(path, Math.max(expiresAtMs, this.grants.get(path) ?? 0));
  }
}

/** The key a namespace verifies tokens with. */
export interface SharedAccessKey {
  keyName: string;
  key: string;
}

/**
 * Answers a `$cbs` `put-token` request: verifies the SAS token against the key and that its resource covers the
 * audience (`name`), then grants the audience to the connection. Refusals are status 401; the token is never
 * logged or echoed.
 */
export function answerPutToken(request: Message, auth: ConnectionAuth, key: SharedAccessKey): Message {
  const props = (request.application_properties ?? {}) as Record<string, unknown>;
  if (props.operation !== 'put-token') return response(request, 400, `Unsupported $cbs operation`);
  if (props.type !== SAS_TOKEN_TYPE) {
    return response(request, 401, `Only ${SAS_TOKEN_TYPE} tokens are accepted by the local endpoint`);
  }
  const audience = typeof props.name === 'string' ? props.name : '';
  const token = tokenText(request.body);
  if (audience === '' || token === undefined)
    return response(request, 400, 'put-token needs a name and a token');
  try {
    const verified = verifySasToken(token, key.keyName, key.key, Date.now());
    const audiencePath = resourcePath(audience);
    if (!tokenCovers(verified.path, audiencePath)) {
      return response(request, 401, 'The token does not cover the audience');
    }
    auth.grant(audiencePath, verified.expiresAtMs);
    return response(request, 202, 'Accepted');
  } catch (error) {
    if (error instanceof SasRefusedError) return response(request, 401, `Unauthorized: ${error.message}`);
    throw error;
  }
}

/** Verifies the `security_token` a `$management` request carries and that it covers `hub`. */
export function managementTokenAllows(token: unknown, hub: string, key: SharedAccessKey): boolean {
  const text = tokenText(token);
  if (text === undefined) return false;
  try {
    const verified = verifySasToken(text, key.keyName, key.key, Date.now());
    return tokenCovers(verified.path, resourcePath(hub));
  } catch (error) {
    if (error instanceof SasRefusedError) return false;
    throw error;
  }
}

function tokenText(body: unknown): string | undefined {
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  const content = (body as { content?: unknown } | undefined)?.content;
  if (Buffer.isBuffer(content)) return content.toString('utf8');
  return undefined;
}
