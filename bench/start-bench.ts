/**
 * `npm run bench` (last part): how long the built `npm start` takes until its API answers, with a new data
 * folder (cold) and again over the same folder holding the first run's data (warm: Azurite, Cosmos and the
 * durable instances load what they kept). Each run is stopped with SIGINT and must exit 0. Prints each time and
 * the median per kind against the target (5 s on a built checkout, issue 13).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FREE_PORTS, startLocalProcess, until } from '../tools/start-local-process.js';

const RUNS = 3;
const TARGET_MS = 5000;
/** A start that takes longer than this is reported as failed, not waited for. */
const GIVE_UP_MS = 60_000;

/** One `npm start` (built) until the API answers; then SIGINT and the exit code. */
async function timeOneStart(dataDir: string): Promise<{ readyMs: number; exitCode: number | string | null }> {
  const started = performance.now();
  const run = startLocalProcess(['--embedded', '--data-dir', dataDir, ...FREE_PORTS]);
  try {
    const api = await until(
      'npm start to print its API base URL',
      () => {
        if (run.child.exitCode !== null) throw new Error(`npm start exited:\n${run.output().slice(-2000)}`);
        return /API base URL\s+(\S+)/.exec(run.output())?.[1];
      },
      run.output,
      GIVE_UP_MS,
    );
    const health = await fetch(`${api}/health`);
    const readyMs = performance.now() - started;
    if (!health.ok) throw new Error(`GET /health answered ${health.status}`);
    run.signalGroup('SIGINT');
    return { readyMs, exitCode: await within(GIVE_UP_MS, run.exited) };
  } finally {
    // Never leave a run behind (its data folder is removed next): a hung shutdown is killed.
    if (run.child.exitCode === null && run.child.signalCode === null) {
      run.signalGroup('SIGKILL');
      await run.exited;
    }
  }
}

/** The promise's value, or null when it takes longer than `ms`. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      resolve(null);
    }, ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

const dataDir = mkdtempSync(join(tmpdir(), 'start-bench-'));
const times: Record<'cold' | 'warm', number[]> = { cold: [], warm: [] };
let failed = false;
try {
  for (let i = 0; i < RUNS; i++) {
    for (const kind of ['cold', 'warm'] as const) {
      if (kind === 'cold') rmSync(join(dataDir, 'run'), { recursive: true, force: true });
      const { readyMs, exitCode } = await timeOneStart(join(dataDir, 'run'));
      times[kind].push(readyMs);
      if (exitCode !== 0) failed = true;
      console.log(`start ${kind.padEnd(4)}  API answered after ${Math.round(readyMs)} ms (exit ${exitCode})`);
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
for (const kind of ['cold', 'warm'] as const) {
  const m = median(times[kind]);
  console.log(
    `start ${kind} median: ${Math.round(m)} ms (target < ${TARGET_MS} ms: ${m < TARGET_MS ? 'met' : 'MISSED'})`,
  );
}
if (failed) {
  console.error('a run did not exit 0 after SIGINT');
  process.exitCode = 1;
}
