import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import ts from 'typescript';

/**
 * Compiles a few self-contained sources (e.g. `tools/simulate.ts` and the one module it imports) to JavaScript
 * in a fresh temporary folder, at the same relative paths under `dist/`, and returns that folder. Tests run
 * scripts from there instead of building the whole repository into the shared `dist/` (another test file may
 * be building or running it at the same moment). Packages resolve from the repository's node_modules (linked).
 */
export function transpileToTemp(files: readonly string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'transpiled-'));
  for (const file of files) {
    const source = readFileSync(file, 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      fileName: file,
    });
    const out = join(root, 'dist', file.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
  writeFileSync(join(root, 'package.json'), '{"type":"module"}');
  symlinkSync(resolve('node_modules'), join(root, 'node_modules'), 'dir');
  return root;
}
