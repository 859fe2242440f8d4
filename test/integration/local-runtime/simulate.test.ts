/**
 * The device simulator against a backend that lost part of its data (issue 13, item 3): a device that exists
 * only as an identity, and one that does not exist at all, given with --device-ids. The simulator used to die
 * with an uncaught stack trace (`POST /devices/sim-002/reset-credentials: HTTP 404`); now it says what it does,
 * registers them again, and sends telemetry the gateway accepts. An unreachable API is one line, exit code 1.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { testSettings } from '../../support/local-env.js';
import { transpileToTemp } from '../../support/transpile.js';

const settings = testSettings();
const adapters = createAdapters(loadConfig(settings));
let runtime: Runtime;
let root = '';

function simulate(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(root, 'dist/tools/simulate.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      resolve({ code, stdout, stderr });
    }),
  );
}

beforeAll(async () => {
  root = transpileToTemp([
    'tools/simulate.ts',
    'tools/simulated-readings.ts',
    'src/provisioning/sas-token.ts',
  ]);
  runtime = await startRuntime({
    settings,
    port: 0,
    log: () => undefined,
    functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
  });
});
afterAll(async () => {
  await runtime.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('simulator after the backend lost devices', () => {
  it('re-registers a ghost device and an unknown one given with --device-ids, then sends telemetry', async () => {
    const ghost = `simghost-${Date.now()}`;
    const unknown = `simnew-${Date.now()}`;
    const created = await fetch(`${runtime.apiBaseUrl}/devices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: ghost }),
    });
    expect(created.status).toBe(201);
    await adapters.catalog.delete(ghost); // what a restart that lost the device catalog left behind
    const run = await simulate([
      '--api',
      runtime.apiBaseUrl,
      '--device-ids',
      `${ghost},${unknown}`,
      '--rate',
      '10',
      '--duration',
      '1',
    ]);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`${ghost} is not registered (404): registering it`);
    expect(run.stdout).toContain(`${unknown} is not registered (404): registering it`);
    expect(run.stdout).toMatch(/simulate: done, \d+ messages sent, 0 refused/);
    for (const id of [ghost, unknown])
      expect((await fetch(`${runtime.apiBaseUrl}/devices/${id}`)).status).toBe(200);
  });

  it('says in one line that the API cannot be reached, exit code 1', async () => {
    const run = await simulate(['--api', 'http://127.0.0.1:9/api', '--devices', '1', '--duration', '1']);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain('cannot reach the API at http://127.0.0.1:9/api');
  });

  it('--help prints the usage; an unknown option is one line and the usage, exit code 2, no stack trace', async () => {
    const help = await simulate(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run simulate -- /);
    const wrong = await simulate(['--bogus']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).not.toMatch(/\n\s+at /);
    expect(wrong.stderr.trim().split('\n')).toEqual([
      expect.stringContaining("simulate: Unknown option '--bogus'") as unknown,
      expect.stringMatching(/^usage: npm run simulate -- /) as unknown,
    ]);
  });
});
