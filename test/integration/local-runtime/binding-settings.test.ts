/**
 * Issue 15, item 2.3, against the embedded runtime: a setting named by a `%Setting%` binding expression of the
 * app (`%AnomaliesEventHubName%`) is missing. The Functions host does not index such a function; the runtime used
 * to start anyway, because the config defaulted the setting and the runtime substituted ''.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { testSettings } from '../../support/local-env.js';

describe('embedded runtime: %Setting% binding expressions', () => {
  it('fails at start, naming the missing setting', async () => {
    const { AnomaliesEventHubName: _, ...settings } = testSettings();
    delete process.env.AnomaliesEventHubName; // the runtime copies settings into process.env; none may linger
    let runtime: Runtime | undefined;
    let failure: unknown;
    try {
      runtime = await startRuntime({
        settings,
        port: 0,
        log: () => undefined,
        functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
      });
    } catch (error) {
      failure = error;
    } finally {
      await runtime?.stop();
    }
    expect(runtime).toBeUndefined();
    expect(String(failure)).toContain('AnomaliesEventHubName');
  });
});
