/**
 * The Azurite child of a local run: a start after a crash stops the one the crashed run left behind (pid file),
 * a taken port is reported with the process holding it, and a dead child is noticed.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { claimPidFile, describePortHolder } from '../../../tools/local-processes.js';
import { startLocalServices } from '../../../tools/local-services.js';

const folder = mkdtempSync(join(tmpdir(), 'local-processes-'));
afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
});

describe('the Azurite child process of a local run', () => {
  it('stops an Azurite left running by a previous run of the same data folder, and says so', async () => {
    // Stands in for the orphan: a process whose command line names azurite.
    const orphan = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'azurite.js'], {
      stdio: 'ignore',
    });
    await once(orphan, 'spawn');
    const pidFile = join(folder, 'azurite.pid');
    writeFileSync(pidFile, JSON.stringify({ pid: orphan.pid }));
    const lines: string[] = [];
    const exited = once(orphan, 'exit');
    await claimPidFile(pidFile, (line) => lines.push(line));
    expect(await exited).toEqual([null, 'SIGTERM']);
    expect(lines).toEqual([expect.stringContaining(`pid ${orphan.pid}`) as unknown]);
  });

  it('refuses to start over a data folder a running local run owns, and leaves its Azurite alone', async () => {
    const azurite = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'azurite.js'], {
      stdio: 'ignore',
    });
    const owner = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await Promise.all([once(azurite, 'spawn'), once(owner, 'spawn')]);
    const dataDir = join(folder, 'in-use');
    mkdirSync(dataDir);
    const pidFile = join(dataDir, 'azurite.pid');
    writeFileSync(pidFile, JSON.stringify({ pid: azurite.pid, owner: owner.pid }));
    await expect(claimPidFile(pidFile)).rejects.toThrow(
      `data folder ${dataDir} is in use by pid ${owner.pid}`,
    );
    expect(azurite.exitCode).toBeNull();
    expect(azurite.signalCode).toBeNull();
    expect(JSON.parse(readFileSync(pidFile, 'utf8'))).toEqual({ pid: azurite.pid, owner: owner.pid });
    // Once the owner is gone (killed, its Azurite left behind), the next start takes over.
    const ownerExited = once(owner, 'exit');
    owner.kill('SIGKILL');
    await ownerExited;
    const azuriteExited = once(azurite, 'exit');
    await claimPidFile(pidFile);
    expect(await azuriteExited).toEqual([null, 'SIGTERM']);
  });

  it('leaves alone a process that is not Azurite (a reused pid) and removes the stale file', async () => {
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await once(other, 'spawn');
    const pidFile = join(folder, 'other.pid');
    writeFileSync(pidFile, JSON.stringify({ pid: other.pid }));
    await claimPidFile(pidFile);
    expect(other.exitCode).toBeNull();
    expect(() => readFileSync(pidFile)).toThrow();
    other.kill();
  });

  it('names the process holding a port', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    expect(describePortHolder(port)).toContain(`pid ${process.pid}`);
    server.close();
  });

  it('notices when its Azurite child dies', async () => {
    const dataDir = join(folder, 'data');
    const lines: string[] = [];
    const services = await startLocalServices({
      inMemory: false,
      dataDir,
      location: join(dataDir, 'azurite'),
      log: (line) => lines.push(line),
    });
    const { pid } = JSON.parse(readFileSync(join(dataDir, 'azurite.pid'), 'utf8')) as { pid: number };
    process.kill(pid, 'SIGKILL');
    expect(await services.died).toMatch(/Azurite \(pid \d+\) exited unexpectedly \(SIGKILL\)/);
    expect(lines).toHaveLength(1);
    await services.stop();
  }, 60_000);
});
