// @ts-check
/**
 * `npm start` / `npm run dev` / the tests: runs the TypeScript build only when a source is newer than the last
 * build (dist/.build-stamp), so a warm start does not pay for tsc. Plain JavaScript: it runs before the build.
 * `--force` builds anyway.
 */
import { execFileSync } from 'node:child_process';
import console from 'node:console';
import process from 'node:process';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const STAMP = join('dist', '.build-stamp');
/** What the build reads (tsconfig.build.json's include, its configs, and host.json that dist reads). */
const SOURCES = ['src', 'tools', 'bench', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];

/**
 * The newest modification time (ms) under a file or folder; 0 when it does not exist.
 * @param {string} path
 * @returns {number}
 */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs; // a deleted or renamed file changes its folder's time
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

/**
 * Whether the build under `root` is older than one of its sources (or missing).
 * @param {string} root
 */
export function isStale(root = '.') {
  const stamp = join(root, STAMP);
  if (!existsSync(stamp)) return true;
  const built = statSync(stamp).mtimeMs;
  return SOURCES.some((source) => newest(join(root, source)) > built);
}

/** Builds when stale (or `force`); says which it did. */
export function buildIfStale(force = false) {
  const started = Date.now();
  if (!force && !isStale()) {
    console.log('dist/ is newer than every source: no build');
    return;
  }
  // The stamp's time is taken before the build: a source saved during the build makes the next start rebuild.
  const before = new Date();
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
  writeFileSync(STAMP, `${before.toISOString()}\n`);
  utimesSync(STAMP, before, before);
  console.log(`built in ${Date.now() - started} ms`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  buildIfStale(process.argv.includes('--force'));
}
