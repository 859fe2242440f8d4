/**
 * The Azurite child process of a local run: made to save before it answers a write, named in a pid file (with the
 * run that owns it) so that a start after a crash can stop the one left behind while a start next to a running
 * run is refused, and, when a port is taken, the process holding it named.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Makes Azurite stop when the run that started it is gone, however it went (kill -9 included): Azurite runs in
 * a process group of its own (a terminal's Ctrl-C must not reach it), so nothing else would stop it. Its stdin is
 * a pipe from the parent; when that closes (the parent exited) it stops itself the way the parent would have
 * (SIGTERM: Azurite closes its servers and saves), and exits anyway 10 s later. Unreferenced: a normal stop is
 * not held up by the pipe.
 */
const exitWithParent = `
let parentGone = false;
const onParentGone = () => {
  if (parentGone) return;
  parentGone = true;
  setTimeout(() => process.exit(1), 10000).unref();
  process.kill(process.pid, 'SIGTERM');
};
process.stdin.on('end', onParentGone);
process.stdin.on('close', onParentGone);
process.stdin.on('error', onParentGone);
process.stdin.resume();
if (typeof process.stdin.unref === 'function') process.stdin.unref();
`;

/**
 * With a data folder, Azurite's LokiJS metadata is saved before each write is answered.
 * Azurite saves LokiJS every 5 s (`autosaveInterval: 5000`, not configurable), so a kill -9 lost writes it had
 * answered 201; here the end of every non-GET answer waits until each database with unsaved changes (or a
 * save in flight) has been written (LokiJS writes `<file>~` and renames it; one save serves every answer
 * waiting for it). A failed save drops the connection instead of acknowledging.
 */
const saveBeforeAnswer = `
const { createRequire } = require('node:module');
const http = require('node:http');
const Loki = createRequire(process.argv[1])('lokijs');
const databases = new Set();
const configure = Loki.prototype.configureOptions;
Loki.prototype.configureOptions = function (options, initialConfig) {
  databases.add(this);
  return configure.call(this, options, initialConfig);
};
const saved = (db) => new Promise((resolve, reject) => db.saveDatabase((error) => (error ? reject(error) : resolve())));
const end = http.ServerResponse.prototype.end;
http.ServerResponse.prototype.end = function (...args) {
  const method = this.req && this.req.method;
  const pending = method === 'GET' || method === 'HEAD' ? [] : [...databases].filter(
    (db) => db.persistenceAdapter && (db.autosaveDirty() || db.throttledSavePending),
  );
  if (pending.length === 0) return end.apply(this, args);
  Promise.all(pending.map(saved)).then(() => end.apply(this, args), (error) => this.destroy(error));
  return this;
};
`;

/**
 * Azurite's bootstrap (`node -e <this> azurite.js …`): it exits with its parent, and with a data folder
 * (`durable`) it saves its metadata before answering a write.
 */
export const azuriteBootstrap = (durable: boolean) =>
  exitWithParent + (durable ? saveBeforeAnswer : '') + 'require(process.argv[1]);\n';

interface PidRecord {
  /** The Azurite child. */
  pid: number;
  /** The local run (process) that started it and owns the data folder. */
  owner?: number;
  location?: string;
}

/** Records the Azurite child of this run, and this process as the data folder's owner. */
export function writePidFile(file: string, pid: number, location: string | undefined): void {
  writeFileSync(file, JSON.stringify({ pid, owner: process.pid, location } satisfies PidRecord));
}

/** Removes the pid file if it still names this run's child. */
export function removePidFile(file: string, pid: number | undefined): void {
  try {
    if ((JSON.parse(readFileSync(file, 'utf8')) as PidRecord).pid === pid) rmSync(file);
  } catch {
    // gone already
  }
}

/**
 * Before a start: if the pid file's owner (another local run) still runs, the data folder is in use and the start
 * is refused (its Azurite is left alone). Otherwise, if the file names an Azurite that still runs (its run was
 * killed, e.g. kill -9, and the child lived on), stops it (SIGTERM, then SIGKILL after 10 s) and says so; a stale
 * file is just removed.
 */
export async function claimPidFile(file: string, log?: (message: string) => void): Promise<void> {
  if (!existsSync(file)) return;
  let record: PidRecord | undefined;
  try {
    record = JSON.parse(readFileSync(file, 'utf8')) as PidRecord;
  } catch {
    record = undefined;
  }
  const owner = record?.owner;
  if (owner !== undefined && owner !== process.pid && isAlive(owner))
    throw new Error(`data folder ${dirname(file)} is in use by pid ${owner} (another npm start?)`);
  const pid = record?.pid;
  if (pid !== undefined && isAlive(pid) && /azurite/i.test(commandOf(pid))) {
    log?.(`stopping Azurite (pid ${pid}) left running by a previous run of this data folder`);
    process.kill(pid, 'SIGTERM');
    const end = Date.now() + 10_000;
    while (isAlive(pid) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 100));
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  rmSync(file, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a process ('' when it cannot be read). */
function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    const ps = spawnSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8' });
    return ps.status === 0 ? ps.stdout.trim() : '';
  }
}

/** ' (held by pid N: command)' for the process listening on a TCP port, or '' when it cannot be found. */
export function describePortHolder(port: number): string {
  if (!Number.isInteger(port) || port <= 0) return '';
  const pid = listenerFromProc(port) ?? listenerFromLsof(port);
  if (pid === undefined) return '';
  const command = commandOf(pid);
  return ` (held by pid ${pid}${command ? `: ${command.slice(0, 200)}` : ''})`;
}

/** Linux: the socket inode listening on the port (/proc/net/tcp*), then the process with that inode open. */
function listenerFromProc(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1]?.split(':')[1];
      // State 0A is LISTEN; field 9 is the socket's inode.
      if (local && parseInt(local, 16) === port && fields[3] === '0A' && fields[9]) inodes.add(fields[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of safeList('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    for (const fd of safeList(`/proc/${entry}/fd`)) {
      try {
        const link = readlinkSync(`/proc/${entry}/fd/${fd}`);
        if (inodes.has(/^socket:\[(\d+)\]$/.exec(link)?.[1] ?? '')) return Number(entry);
      } catch {
        // closed meanwhile, or not ours to read
      }
    }
  }
  return undefined;
}

function listenerFromLsof(port: number): number | undefined {
  const lsof = spawnSync('lsof', ['-nP', `-iTCP:${port}`, '-sTCP:LISTEN', '-t'], { encoding: 'utf8' });
  const pid = Number(lsof.stdout.split('\n')[0]);
  return lsof.status === 0 && Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function safeList(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}
