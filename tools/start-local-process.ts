/**
 * `npm start` as a user runs it in a terminal: the built start script as the leader of its own process group
 * (a terminal's Ctrl-C is SIGINT to that whole group), on free ports, its output collected.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

/** Builds dist/ when a source is newer than it (once per test file that needs the built start script). */
export function buildIfStale(): void {
  execFileSync(process.execPath, ['tools/build-if-stale.js'], { stdio: 'ignore' });
}

export interface StartedProcess {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output: () => string;
  /** Resolves with the exit code (or the signal's name) once it has exited. */
  exited: Promise<number | string>;
  /** Sends a signal to its whole process group, as a terminal does. */
  signalGroup: (signal: NodeJS.Signals) => void;
}

/** Spawns `node dist/tools/start-local.js …args` as a process-group leader. */
export function startLocalProcess(
  args: readonly string[],
  options: { env?: Record<string, string>; cwd?: string; script?: string } = {},
): StartedProcess {
  const child = spawn(process.execPath, [options.script ?? 'dist/tools/start-local.js', ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve(code ?? signal ?? 'unknown');
    }),
  );
  return {
    child,
    output: () => text,
    exited,
    signalGroup: (signal) => {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    },
  };
}

/** Polls `probe` every 100 ms until it gives a value; fails after `timeoutMs` with the process output. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  output: () => string,
  timeoutMs = 60_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}.\n${output().slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Every port is 0 (a free one). */
export const FREE_PORTS = [
  '--http-port',
  '--blob-port',
  '--queue-port',
  '--table-port',
  '--cosmos-port',
  '--eventhubs-port',
  '--gateway-port',
].flatMap((flag) => [flag, '0']);
