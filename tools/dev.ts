/**
 * `npm run dev`: `npm start` that follows the sources. `tsc --watch` rebuilds dist/ on every change; after each
 * successful rebuild the running `npm start` (dist/tools/start-local.js, the arguments of this command passed
 * on) is stopped with its ordered shutdown (durable instances and data saved) and started again on the new
 * build. A rebuild with errors keeps the running app. Ctrl-C stops both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const START = fileURLToPath(new URL('./start-local.js', import.meta.url));
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
/** Most time a restart waits for the old run's ordered shutdown before it kills it (ms). */
const STOP_TIMEOUT_MS = 60_000;
/** Changes within this time of a rebuild are taken together (ms): an editor's save-all is one restart. */
const DEBOUNCE_MS = 300;

let app: ChildProcess | undefined;
let stopping = false;
/** A call, not a read: TypeScript would keep a read narrowed across an await. */
const isStopping = () => stopping;

const log = (line: string) => {
  console.log(`[dev] ${line}`);
};

function startApp() {
  app = spawn(process.execPath, [START, ...process.argv.slice(2)], { stdio: 'inherit' });
  const started = app;
  started.on('exit', (code, signal) => {
    if (app !== started) return; // stopped for a restart or by Ctrl-C
    app = undefined;
    if (!stopping) log(`npm start exited (${signal ?? `code ${code ?? 0}`}); waiting for the next change`);
  });
}

/** Stops the running app with its ordered shutdown (SIGTERM), killing it if it has not exited in time. */
async function stopApp() {
  const running = app;
  app = undefined;
  if (!running || running.exitCode !== null || running.signalCode !== null) return;
  const exited = new Promise((resolve) => running.once('exit', resolve));
  running.kill('SIGTERM');
  const timer = setTimeout(() => {
    log(`npm start did not stop within ${STOP_TIMEOUT_MS / 1000} s: killing it`);
    running.kill('SIGKILL');
  }, STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

let restart: NodeJS.Timeout | undefined;
let restarting: Promise<void> = Promise.resolve();
const scheduleRestart = () => {
  clearTimeout(restart);
  restart = setTimeout(() => {
    restarting = restarting.then(async () => {
      if (isStopping()) return;
      if (app) log('sources changed and built: restarting');
      await stopApp();
      if (!isStopping()) startApp();
    });
  }, DEBOUNCE_MS);
};

const tsc = spawn(process.execPath, [TSC, '-p', 'tsconfig.build.json', '--watch', '--preserveWatchOutput'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let output = '';
tsc.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  output = (output + chunk.toString()).slice(-4096);
  // tsc --watch ends each compilation with "Found N errors. Watching for file changes."
  const done = /Found (\d+) errors?\. Watching for file changes\./.exec(output);
  if (!done) return;
  output = '';
  if (done[1] === '0') scheduleRestart();
  else log('the build has errors: the running app is kept');
});
tsc.on('exit', (code) => {
  if (!stopping) log(`tsc --watch exited with code ${code ?? 'none'}`);
});

const shutdown = async (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  clearTimeout(restart);
  tsc.kill('SIGTERM');
  // A terminal's Ctrl-C reached the app too (same process group); any other signal is passed on.
  if (signal !== 'SIGINT') app?.kill(signal);
  const running = app;
  if (running && running.exitCode === null && running.signalCode === null)
    await new Promise((resolve) => running.once('exit', resolve));
  process.exit(0);
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => void shutdown(signal));
}
