import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { filesUnder } from '../support/files.js';

const SRC = join(import.meta.dirname, '../../src');

const sourceFiles = (dir: string) => filesUnder(dir, '.ts');

const importsOf = (file: string) =>
  [
    ...readFileSync(file, 'utf8').matchAll(
      /(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    ),
  ].map((m) => m[1] ?? m[2] ?? '');

// Domain modules: everything except the composition root, the HTTP edge, config and the adapters.
const isDomain = (file: string) => !/^(index\.ts|config\.ts|http\/|infra\/)/.test(relative(SRC, file));

describe('layering (docs/adr/0001)', () => {
  const domainFiles = sourceFiles(SRC).filter(isDomain);

  it('finds the domain modules', () => {
    expect(domainFiles.map((f) => relative(SRC, f))).toContain('telemetry/ingest-telemetry.ts');
  });

  it.each(domainFiles.map((f) => [relative(SRC, f), f]))(
    '%s imports neither Azure SDKs nor infra',
    (_name, file) => {
      for (const spec of importsOf(file)) {
        expect(spec).not.toMatch(/^@azure\//);
        expect(spec).not.toMatch(/(^|\/)infra\//);
        expect(spec).not.toMatch(/(^|\/)http\//);
      }
    },
  );

  it('only the composition root registers functions', () => {
    const callers = sourceFiles(SRC).filter((f) =>
      /\bapp\.(http|eventHub|timer|storage|generic|orchestration|activity|entity)\(/.test(
        readFileSync(f, 'utf8'),
      ),
    );
    expect(callers.map((f) => relative(SRC, f))).toEqual(['index.ts']);
  });
});
