/**
 * The short fault-injection ledger (bench/faults.ts --short: 6 devices × 6 messages at 0 % and 10 % faults)
 * through the embedded runtime, built and run as a child process as `npm run faults` runs it, against this
 * run's local services. Each invariant of bench/ledger/report.ts is one test.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { INVARIANTS, formatInvariants, formatTable } from '../../../bench/ledger/report.js';
import type { LedgerRow } from '../../../bench/ledger/run.js';

// Built into its own folder (same depth as dist/, so host.json resolves): other tests build dist/ in parallel.
const OUT_DIR = 'dist-faults';
const folder = mkdtempSync(join(tmpdir(), 'faults-'));
let rows: LedgerRow[] = [];
let output = '';

beforeAll(async () => {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', OUT_DIR], { stdio: 'ignore' });
  const json = join(folder, 'ledger.json');
  const child = spawn(process.execPath, [`${OUT_DIR}/bench/faults.js`, '--short', '--json', json], {
    env: {
      ...process.env,
      FAULTS_SERVICES: JSON.stringify(inject('localServices')),
      FAULTS_LOG: join(folder, 'runtime.log'),
    },
    stdio: 'pipe',
  });
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`faults --short exited with ${code}:\n${output.slice(-3000)}`);
  rows = JSON.parse(readFileSync(json, 'utf8')) as LedgerRow[];
  console.log(`${formatTable(rows)}\n\n${formatInvariants(rows)}`);
}, 300_000);

afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
});

describe('fault-injection ledger (short: 0 % and 10 %)', () => {
  it('ran both phases with traffic, alarms and injected faults', () => {
    expect(rows.map((r) => r.ratePercent)).toEqual([0, 10]);
    for (const r of rows) {
      expect(r.messagesIn).toBe(36);
      expect(r.anomaliesIn).toBeGreaterThan(0);
    }
    const injected = rows[1]?.injected ?? {};
    const total = Object.values(injected).reduce(
      (n, c) => n + Object.values(c.injected).reduce((a, b) => a + b, 0),
      0,
    );
    expect(total).toBeGreaterThan(0);
    expect(rows[0]?.injected.cosmos?.requests).toBeGreaterThan(0); // the app's Cosmos traffic went through the proxy
    expect(rows[0]?.injected.blob?.requests).toBeGreaterThan(0);
    expect(rows[0]?.injected.slack?.requests).toBeGreaterThan(0);
  });

  for (const invariant of INVARIANTS) {
    it(invariant.text, () => {
      const failing = rows.filter((r) => !invariant.holds(r)).map((r) => `${r.ratePercent} %`);
      expect(failing, `${invariant.id} fails at ${failing.join(', ')}\n${formatTable(rows)}`).toEqual([]);
    });
  }
});
