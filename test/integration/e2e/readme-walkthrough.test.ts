/**
 * The README's walk-through, executed verbatim (issue 13, item 8): the fenced block under "Walk through it" is
 * taken from README.md, only its port is changed, and bash runs it as one pasted block against a started
 * embedded runtime. It used to fail that way (the state was read before ingest had written it).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { testSettings } from '../../support/local-env.js';
import { transpileToTemp } from '../../support/transpile.js';

/** The first ```bash block after the "### Walk through it" heading. */
function walkThrough(): string {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('### Walk through it'));
  const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('README.md has no bash block under "### Walk through it"');
  return block;
}

let runtime: Runtime;
let root = '';
const logs: string[] = [];

beforeAll(async () => {
  // The block signs tokens with ./dist/src/provisioning/sas-token.js, as after `npm start` (which builds).
  root = transpileToTemp(['src/provisioning/sas-token.ts']);
  runtime = await startRuntime({
    // What npm start sets for the embedded run (from the sample: the anomalies hub; no registry throttle
    // locally, job polling every 2 s).
    settings: testSettings({
      AnomaliesEventHubName: 'anomalies',
      AnomaliesConsumerGroup: 'notify',
      Provisioning__RegistryOpsPerMinute: '100000',
      Jobs__PollIntervalSeconds: '2',
    }),
    port: 0,
    log: (message) => logs.push(message),
    functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
  });
});
afterAll(async () => {
  await runtime.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('README walk-through, pasted as one block', () => {
  it('runs start to finish against the running backend', { timeout: 120_000 }, async () => {
    const block = walkThrough();
    expect(block).toContain('localhost:7071');
    const port = new URL(runtime.origin).port;
    const script = block.replaceAll('localhost:7071', `localhost:${port}`);
    const before = readdirSync(root).sort();
    const child = spawn('bash', ['-c', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const context = `stdout:\n${out}\nstderr:\n${err}\nruntime log:\n${logs.slice(-40).join('\n')}`;
    expect(code, context).toBe(0);
    expect(err, context).toBe('');
    const lines = out.split('\n');
    // 2: accepted; 3: the state, read after waiting for ingest; 7: refused once deactivated.
    expect(
      lines.filter((l) => /^\d{3}$/.test(l)),
      context,
    ).toEqual(['204', '403']);
    expect(out, context).toMatch(/"temperature":\{"value":21\.5|"temperature":21\.5/);
    // 4-5: the alarm opened and was acknowledged through its URL-encoded id.
    expect(out, context).toContain('"rule":"temperature-high"');
    expect(out, context).toContain('"status":"acknowledged"');
    // 6: the twin patch; 8: the bulk run completed; 9: the job was accepted.
    expect(out, context).toContain('"telemetryIntervalSeconds":30');
    expect(out, context).toContain('"runtimeStatus":"Completed"');
    expect(out, context).toMatch(/"type":"twinUpdate"/);
    // Nothing written where it ran (no file with keys).
    expect(readdirSync(root).sort()).toEqual(before);
  });
});
