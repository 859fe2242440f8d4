/**
 * Keeps infrastructure and code honest without Azure access: the Bicep files are parsed as text. Every
 * setting the config schema needs is set by the Function App's app settings (identity-based where the app
 * supports it, never an account key), and every container, hub and consumer group the code uses is created.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { filesUnder } from '../../support/files.js';

const INFRA = join(import.meta.dirname, '../../../infra');

const sources = filesUnder(INFRA, '.bicep').map((file) => ({ file, text: readFileSync(file, 'utf8') }));

/** Where the `appSettings = { ... }` object is (braces balanced). */
function appSettingsSpan(): { file: string; open: number; end: number } {
  const source = sources.find((s) => /\bappSettings\s*=\s*\{/.test(s.text));
  if (!source) throw new Error('No `appSettings = {` object in infra/*.bicep');
  const open = source.text.indexOf('{', source.text.search(/\bappSettings\s*=\s*\{/));
  let depth = 0;
  let end = open;
  for (; end < source.text.length; end++) {
    const c = source.text[end];
    if (c === '{') depth++;
    if (c === '}' && --depth === 0) break;
  }
  return { file: source.file, open, end };
}

/** Every Bicep file, without the app settings object: where resources are declared, not just named. */
const declarations = sources
  .map(({ file, text }) => {
    const span = appSettingsSpan();
    return file === span.file ? text.slice(0, span.open) + text.slice(span.end + 1) : text;
  })
  .join('\n');

/** The `appSettings` object: `NAME: value` lines inside `var appSettings = { ... }`. */
function appSettingsBlock(): Map<string, string> {
  const span = appSettingsSpan();
  const text = sources.find((s) => s.file === span.file)?.text ?? '';
  const body = text.slice(span.open + 1, span.end);
  const settings = new Map<string, string>();
  let nested = 0;
  for (const line of body.split('\n')) {
    const match = nested === 0 ? /^\s*'?([A-Za-z0-9_]+)'?\s*:\s*(.*)$/.exec(line) : null;
    if (match?.[1]) settings.set(match[1], (match[2] ?? '').trim());
    nested += (line.match(/[{[(]/g) ?? []).length - (line.match(/[}\])]/g) ?? []).length;
  }
  return settings;
}

/** A value for a setting: the Bicep literal when it is one, else a placeholder of the right shape. */
function sampleValue(name: string, bicepValue: string): string {
  // A Key Vault reference resolves to the secret: for the keys' encryption key, 32 bytes in base64.
  if (bicepValue.startsWith("'@Microsoft.KeyVault(")) {
    return /EncryptionKey$/.test(name) ? Buffer.alloc(32, 7).toString('base64') : 'example.azure.test';
  }
  // A number parameter written as a string.
  if (bicepValue.startsWith('string(')) return '24';
  const literal = /^'([^']*)'$/.exec(bicepValue);
  if (literal) return literal[1] ?? '';
  if (/accountEndpoint|blobServiceUri|Url$|URL$/.test(name)) return 'https://example.azure.test/';
  return 'example.azure.test';
}

describe('infra/*.bicep and the code agree', () => {
  const settings = appSettingsBlock();

  it('finds the Bicep files and the Function App settings', () => {
    expect(sources.length).toBeGreaterThan(0);
    expect(settings.size).toBeGreaterThan(10);
  });

  it('sets every setting the config schema requires: the app starts with exactly these names', () => {
    const env = {
      ...Object.fromEntries([...settings].map(([name, value]) => [name, sampleValue(name, value)])),
      // What the platform sets on every instance: the config's Azure-only rules apply.
      WEBSITE_SITE_NAME: 'func-iot',
      WEBSITE_INSTANCE_ID: 'instance-1',
    };
    const config = loadConfig(env);
    // Production shape: IoT Hub identity registry, managed identities for Cosmos DB and Blob storage.
    expect(config.provisioning.identityStore).toMatchObject({ kind: 'iothub' });
    expect(config.cosmos.key).toBeUndefined();
    expect(config.storage).toHaveProperty('blobServiceUri');
    expect(config.createResourcesIfMissing).toBe(false);
  });

  it('puts no account key or connection string with a key into app settings', () => {
    for (const [name, value] of settings) {
      expect(value, name).not.toMatch(/listKeys\(|AccountKey=|primaryKey|SharedAccessKey=/i);
    }
    expect([...settings.keys()]).not.toContain('CosmosDbKey');
  });

  it('creates every container, hub and consumer group the code uses, under the names the app is given', () => {
    const env = Object.fromEntries([...settings].map(([name, value]) => [name, sampleValue(name, value)]));
    const config = loadConfig(env);
    const names = [
      config.cosmos.databaseName,
      config.cosmos.stateContainerName,
      config.provisioning.devicesContainerName,
      config.provisioning.reconciliationContainerName,
      config.alerts.alarmsContainerName,
      config.workflows.jobsContainerName,
      config.storage.rawArchiveContainer,
      config.storage.deadLetterContainer,
      config.workflows.workContainer,
      config.workflows.resultsContainer,
      env.AnomaliesEventHubName ?? 'anomalies',
      env.AnomaliesConsumerGroup ?? 'notify',
      env.IngestConsumerGroup ?? 'ingest',
      'asa',
    ];
    // Outside the app settings: the Bicep must create them, not only pass their names to the app.
    for (const name of names) expect(declarations, name).toContain(`'${name}'`);
  });

  it('deletes key-bearing provisioning blobs after the keys window, rounded up to days, and reads the key from Key Vault', () => {
    const storage = sources.find((s) => s.file.endsWith('storage-archive.bicep'))?.text ?? '';
    const rule = storage.slice(storage.indexOf("name: 'provisioning-keys-expire'"));
    expect(rule).toMatch(/prefixMatch: \[\s*'\$\{provisioningWorkContainerName\}\/keys\/'/);
    expect(rule).toContain("'${provisioningWorkContainerName}/results/'");
    expect(rule).toContain("'${provisioningResultsContainerName}/'");
    expect(rule).toMatch(/delete: \{\s*daysAfterModificationGreaterThan: keysRetentionDays/);
    const main = sources.find((s) => s.file.endsWith('main.bicep'))?.text ?? '';
    expect(main).toContain('keysRetentionDays: (provisioningKeysRetentionHours + 23) / 24');
    expect(main).toContain('provisioningWorkContainerName: provisioningWorkContainerName');
    expect(main).toContain('provisioningResultsContainerName: provisioningResultsContainerName');
    expect(settings.get('Provisioning__KeysRetentionHours')).toBe('string(provisioningKeysRetentionHours)');
    expect(settings.get('Provisioning__KeysEncryptionKey')).toMatch(/^'@Microsoft\.KeyVault\(SecretUri=/);
    expect(declarations).toMatch(/scope: provisioningKeysSecret\b/);
  });

  it('loads the Stream Analytics query from asa/ rather than copying it', () => {
    expect(declarations).toMatch(/loadTextContent\('[^']*asa\/[^']+\.asaql'\)/);
  });
});
