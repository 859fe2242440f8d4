/**
 * A stand-in for Azure Functions Core Tools (they cannot be installed here): a `func` on PATH that records the
 * environment and local.settings.json it was started with, then stays up until a signal, as `func start` does.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What the fake func recorded. */
export interface FuncRecord {
  env: { [name: string]: string | undefined };
  localSettings: { Values: { [name: string]: string } };
}

// Bounded: it exits by itself after 5 minutes.
const FAKE_FUNC = `#!/usr/bin/env node
const { readFileSync, writeFileSync } = require('node:fs');
if (process.argv[2] === '--version') { console.log('4.0.0-fake'); process.exit(0); }
writeFileSync(process.env.FAKE_FUNC_RECORD, JSON.stringify({
  env: process.env,
  localSettings: JSON.parse(readFileSync('local.settings.json', 'utf8')),
}));
console.log('fake func: up');
const quit = () => { console.log('fake func: stopping'); process.exit(0); };
process.on('SIGINT', quit);
process.on('SIGTERM', quit);
setTimeout(quit, 300000);
`;

/** A scratch folder holding only the sample settings (as a fresh clone) and bin/func; the env to run npm start with. */
export function fakeFuncWorkDir(): { workDir: string; recordFile: string; env: Record<string, string> } {
  const workDir = mkdtempSync(join(tmpdir(), 'npm-start-func-side-'));
  const bin = join(workDir, 'bin');
  writeFileSync(join(workDir, 'package.json'), '{"type":"commonjs"}');
  mkdirSync(bin);
  writeFileSync(join(bin, 'func'), FAKE_FUNC);
  chmodSync(join(bin, 'func'), 0o755);
  copyFileSync('local.settings.sample.json', join(workDir, 'local.settings.sample.json'));
  const recordFile = join(workDir, 'record.json');
  return {
    workDir,
    recordFile,
    env: { PATH: `${bin}:${process.env.PATH ?? ''}`, FAKE_FUNC_RECORD: recordFile },
  };
}

/** The settings the app under func sees: local.settings.json's Values under func's environment. */
export function appSettingsOf(record: FuncRecord): Record<string, string> {
  return Object.fromEntries(
    Object.entries({ ...record.localSettings.Values, ...record.env }).flatMap(([k, v]) =>
      v === undefined ? [] : [[k, v]],
    ),
  );
}
