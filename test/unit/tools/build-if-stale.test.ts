import { mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- plain JavaScript (it runs before the build), checked by its own // @ts-check
import { isStale } from '../../../tools/build-if-stale.js';

const stale = isStale as (root: string) => boolean;

function checkout() {
  const root = mkdtempSync(join(tmpdir(), 'build-if-stale-'));
  mkdirSync(join(root, 'src', 'deep'), { recursive: true });
  mkdirSync(join(root, 'dist'));
  writeFileSync(join(root, 'src', 'deep', 'a.ts'), '');
  const at = (path: string, seconds: number) => {
    utimesSync(join(root, path), seconds, seconds);
  };
  at('src/deep/a.ts', 1000);
  at('src/deep', 1000);
  at('src', 1000);
  return { root, at };
}

describe('build-if-stale', () => {
  it('builds when dist/ has never been built', () => {
    expect(stale(checkout().root)).toBe(true);
  });

  it('does not build when the last build is newer than every source', () => {
    const { root, at } = checkout();
    writeFileSync(join(root, 'dist', '.build-stamp'), '');
    at('dist/.build-stamp', 2000);
    expect(stale(root)).toBe(false);
  });

  it('builds when a source deep in a folder changed after the last build', () => {
    const { root, at } = checkout();
    writeFileSync(join(root, 'dist', '.build-stamp'), '');
    at('dist/.build-stamp', 2000);
    at('src/deep/a.ts', 3000);
    expect(stale(root)).toBe(true);
  });

  it('npm start, dev, simulate, reconcile and soak build only when stale', () => {
    const { scripts } = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    };
    for (const name of ['start', 'dev', 'simulate', 'reconcile', 'soak'])
      expect(scripts[name], name).toMatch(/^node tools\/build-if-stale\.js && /);
  });
});
