import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { filesUnder } from '../support/files.js';

const SRC = join(import.meta.dirname, '../../src');

const sourceFiles = (dir: string) => filesUnder(dir, '.ts');

const importsIn = (source: string) =>
  [
    ...source.matchAll(/(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1] ?? m[2] ?? '');

const importsOf = (file: string) => importsIn(readFileSync(file, 'utf8'));

// Domain modules: everything except the composition root, the HTTP edge, config and the adapters.
const isDomain = (path: string) => !/^(index\.ts|config\.ts|http\/|infra\/)/.test(path);

/**
 * The files of src/ that may import `durable-functions` (docs/adr/0001): the composition root, the durable
 * adapter, and the workflow files (an orchestration, its activities and names) with their durable-timer helper.
 */
const DURABLE_IMPORTERS = [
  /^index\.ts$/,
  /^infra\/durable\/[^/]+\.ts$/,
  /^jobs\/scheduled-job-workflow\.ts$/,
  /^provisioning\/provision-device-workflow\.ts$/,
  /^provisioning\/bulk-provisioning-workflow\.ts$/,
  /^provisioning\/throttle-wait\.ts$/,
];

/** What a src/ file (path relative to src/) imports against the layering rules; empty when it keeps them. */
function layeringViolations(path: string, source: string): string[] {
  const found: string[] = [];
  for (const spec of importsIn(source)) {
    if (spec === 'durable-functions' || spec.startsWith('durable-functions/')) {
      if (!DURABLE_IMPORTERS.some((allowed) => allowed.test(path)))
        found.push(`${spec} (not a workflow file)`);
    }
    if (!isDomain(path)) continue;
    if (/^@azure\//.test(spec)) found.push(`${spec} (an Azure SDK in the domain)`);
    if (/(^|\/)infra\//.test(spec)) found.push(`${spec} (infra in the domain)`);
    if (/(^|\/)http\//.test(spec)) found.push(`${spec} (the HTTP edge in the domain)`);
  }
  return found;
}

describe('layering (docs/adr/0001)', () => {
  const files = sourceFiles(SRC).map((f) => [relative(SRC, f), f] as const);
  const domainFiles = files.filter(([path]) => isDomain(path));

  it('finds the domain modules', () => {
    expect(domainFiles.map(([path]) => path)).toContain('telemetry/ingest-telemetry.ts');
  });

  it.each(files)(
    '%s keeps the layering (no Azure SDK, infra or HTTP in the domain; durable only in workflows)',
    (path, file) => {
      expect(layeringViolations(path, readFileSync(file, 'utf8'))).toEqual([]);
    },
  );

  it('refuses durable-functions in a domain file that is no workflow, and any Azure SDK in the domain', () => {
    const durable = "import * as df from 'durable-functions';\n";
    expect(layeringViolations('telemetry/ingest-telemetry.ts', durable)).toEqual([
      'durable-functions (not a workflow file)',
    ]);
    expect(layeringViolations('provisioning/provisioning-service.ts', durable)).toHaveLength(1);
    expect(layeringViolations('http/problem.ts', durable)).toHaveLength(1);
    expect(layeringViolations('infra/cosmos/cosmos-scheduled-job-store.ts', durable)).toHaveLength(1);
    expect(layeringViolations('jobs/scheduled-job-workflow.ts', durable)).toEqual([]);
    expect(layeringViolations('infra/durable/durable-workflow-client.ts', durable)).toEqual([]);
    expect(
      layeringViolations('provisioning/provision-device-workflow.ts', "import { x } from '@azure/cosmos';"),
    ).toEqual(['@azure/cosmos (an Azure SDK in the domain)']);
  });

  it('the allowed durable-functions importers are the files that do import it (no stale entry)', () => {
    const importers = files
      .filter(([, file]) => importsOf(file).includes('durable-functions'))
      .map(([path]) => path);
    for (const allowed of DURABLE_IMPORTERS) expect(importers.some((path) => allowed.test(path))).toBe(true);
  });

  it('only the composition root registers functions', () => {
    const callers = sourceFiles(SRC).filter((f) =>
      /\bapp\.(http|eventHub|timer|storage|generic|orchestration|activity|entity)\(/.test(
        readFileSync(f, 'utf8'),
      ),
    );
    expect(callers.map((f) => relative(SRC, f))).toEqual(['index.ts']);
  });
});
