/**
 * Keeps infrastructure and code honest without Azure access: the Bicep files are parsed as text, and the ARM
 * template the Bicep compiler made of them (.cache/bicep/out/main.json, `npm run infra:build`) is read when
 * present. Every setting the config schema needs is set by the Function App's app settings (identity-based where
 * the app supports it, never an account key), and every container, hub and consumer group the code uses is
 * created. On the compiled template: the review items of issue 15 (ASA job created stopped, Cosmos role
 * assignments serialized, Node 22, IoT Hub custom role, Slack webhook in Key Vault, basic-auth publishing off).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
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

// ---- The compiled ARM template (npm run infra:build). ----

const ROOT = join(import.meta.dirname, '../../..');
const COMPILED = join(ROOT, '.cache/bicep/out/main.json');

/** The hash tools/bicep.sh writes beside the template: sha256sum of every source file, sorted, hashed again. */
function sourcesHash(): string {
  const files = [...filesUnder(join(ROOT, 'infra'), ''), ...filesUnder(join(ROOT, 'asa'), '')]
    .map((path) => relative(ROOT, path))
    .concat('bicepconfig.json')
    .sort();
  const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
  return sha(files.map((file) => `${sha(readFileSync(join(ROOT, file)))}  ${file}\n`).join(''));
}

const stamp = join(ROOT, '.cache/bicep/out/sources.sha256');
const current =
  existsSync(COMPILED) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === sourcesHash();
const compiled = existsSync(COMPILED) && current;
if (!existsSync(COMPILED)) {
  console.warn(
    `bicep-consistency: ${COMPILED} is absent (npm run infra:build needs the .NET 10 SDK): the compiled-template checks are skipped`,
  );
} else if (!current) {
  console.warn(
    `bicep-consistency: ${COMPILED} was compiled from other sources than infra/, asa/ and bicepconfig.json now hold: run npm run infra:build; the compiled-template checks are skipped`,
  );
}

type Json = Record<string, unknown>;

interface ArmTemplate {
  variables?: Json;
  resources: Json[] | Record<string, Json>;
}

function asObject(value: unknown): Json {
  return typeof value === 'object' && value !== null ? (value as Json) : {};
}

/** Resources of a template: an array, or an object keyed by symbolic name (languageVersion 2.0). */
function resourcesOf(template: ArmTemplate): Json[] {
  return Array.isArray(template.resources) ? template.resources : Object.values(template.resources);
}

/** `"[variables('x')]"` resolved against the template's variables; any other value as is. */
function resolve(template: ArmTemplate, value: unknown): unknown {
  const match = typeof value === 'string' ? /^\[variables\('([^']+)'\)\]$/.exec(value) : null;
  return match?.[1] !== undefined ? template.variables?.[match[1]] : value;
}

describe.skipIf(!compiled)(
  'the compiled ARM template (.cache/bicep/out/main.json) and the code agree',
  () => {
    const main = (compiled ? JSON.parse(readFileSync(COMPILED, 'utf8')) : { resources: [] }) as ArmTemplate;
    const modules = resourcesOf(main).filter((r) => r.type === 'Microsoft.Resources/deployments');
    const module = (name: string): Json => {
      const found = modules.find((r) => r.name === name);
      if (!found) throw new Error(`no module deployment '${name}' in the compiled template`);
      return found;
    };
    const moduleTemplate = (name: string): ArmTemplate =>
      asObject(asObject(module(name).properties).template) as never;
    const moduleParam = (name: string, param: string): unknown =>
      resolve(main, asObject(asObject(asObject(module(name).properties).parameters)[param]).value);
    const resourcesOfType = (name: string, type: string): Json[] =>
      resourcesOf(moduleTemplate(name)).filter((r) => r.type === type);
    const properties = (resource: Json | undefined): Json => asObject(resource?.properties);
    /** Read in each test: the describe body also runs when the template is absent and the tests are skipped. */
    const compiledSettings = (): Json => asObject(moduleParam('function-app-settings', 'appSettings'));

    it('sets the same app settings as the Bicep text says', () => {
      expect(Object.keys(compiledSettings()).sort()).toEqual([...appSettingsBlock().keys()].sort());
    });

    it('creates every container, hub and consumer group the code uses, under the names the app is given', () => {
      const config = loadConfig(
        Object.fromEntries([...appSettingsBlock()].map(([name, value]) => [name, sampleValue(name, value)])),
      );
      const names = (mod: string, param: string): unknown[] => {
        const value = moduleParam(mod, param);
        return (Array.isArray(value) ? value : [value]).map((v) => resolve(main, v));
      };
      expect(names('cosmos', 'databaseName')).toEqual([config.cosmos.databaseName]);
      expect(names('cosmos', 'containerNames')).toEqual(
        expect.arrayContaining([
          config.cosmos.stateContainerName,
          config.provisioning.devicesContainerName,
          config.provisioning.reconciliationContainerName,
          config.alerts.alarmsContainerName,
          config.workflows.jobsContainerName,
        ]),
      );
      expect(names('archive-storage', 'containerNames')).toEqual(
        expect.arrayContaining([
          config.storage.rawArchiveContainer,
          config.storage.deadLetterContainer,
          config.workflows.workContainer,
          config.workflows.resultsContainer,
        ]),
      );
      expect(names('eventhubs', 'hubName')).toEqual([compiledSettings().AnomaliesEventHubName]);
      expect(names('eventhubs', 'consumerGroupName')).toEqual([compiledSettings().AnomaliesConsumerGroup]);
      expect(names('iothub', 'consumerGroupNames')).toEqual(
        expect.arrayContaining([
          compiledSettings().IngestConsumerGroup,
          moduleParam('stream-analytics', 'consumerGroupName'),
        ]),
      );
    });

    it('creates the Stream Analytics job stopped: no outputStartMode (review item 2)', () => {
      const [job] = resourcesOfType('stream-analytics', 'Microsoft.StreamAnalytics/streamingjobs');
      expect(job).toBeDefined();
      expect(properties(job)).not.toHaveProperty('outputStartMode');
    });

    it("runs the deployer's Cosmos DB role assignment after the app's, never concurrently (review item 3)", () => {
      expect(
        resourcesOfType('function-roles', 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments'),
      ).toHaveLength(1);
      expect(
        resourcesOfType('principal-roles', 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments'),
      ).toHaveLength(1);
      expect(module('principal-roles').dependsOn).toContain(
        "[resourceId('Microsoft.Resources/deployments', 'function-roles')]",
      );
    });

    it('runs the function app on Node 22 (review item 5)', () => {
      const [site] = resourcesOfType('function-app', 'Microsoft.Web/sites');
      expect(asObject(asObject(properties(site).functionAppConfig).runtime)).toEqual({
        name: 'node',
        version: '22',
      });
    });

    it('grants IoT Hub exactly the data actions the app uses, through a custom role (review item 7)', () => {
      const template = moduleTemplate('function-roles');
      const [definition] = resourcesOfType('function-roles', 'Microsoft.Authorization/roleDefinitions');
      const [permission] = (properties(definition).permissions ?? []) as Json[];
      expect(resolve(template, permission?.dataActions)).toEqual([
        'Microsoft.Devices/IotHubs/devices/read',
        'Microsoft.Devices/IotHubs/devices/write',
        'Microsoft.Devices/IotHubs/devices/delete',
        'Microsoft.Devices/IotHubs/twins/read',
        'Microsoft.Devices/IotHubs/twins/write',
        'Microsoft.Devices/IotHubs/jobs/read',
        'Microsoft.Devices/IotHubs/jobs/write',
        'Microsoft.Devices/IotHubs/directMethods/invoke/action',
      ]);
      expect(permission?.actions).toEqual([]);
      // No built-in IoT Hub data role: Data Contributor, Registry Contributor, Twin Contributor.
      const text = JSON.stringify(template);
      for (const builtIn of [
        '4fc6c259-987e-4a07-842e-c321cc9d413f',
        '4ea46cd5-c1b2-4a8e-910b-273211f9ce47',
        '494bdba2-168f-4f31-a0a1-191d2f7c028c',
      ]) {
        expect(text).not.toContain(builtIn);
      }
      const assignments = resourcesOfType('function-roles', 'Microsoft.Authorization/roleAssignments');
      const custom = assignments.filter((a) =>
        String(properties(a).roleDefinitionId).includes('roleDefinitions'),
      );
      expect(
        custom.some((a) =>
          String(properties(a).roleDefinitionId).startsWith(
            "[resourceId('Microsoft.Authorization/roleDefinitions'",
          ),
        ),
      ).toBe(true);
    });

    it('gives the app the Slack webhook as a Key Vault reference, never the URL itself (review item 8)', () => {
      expect(String(compiledSettings().SlackWebhookUrl)).toContain('@Microsoft.KeyVault(SecretUri=');
      expect(String(compiledSettings().SlackWebhookUrl)).not.toMatch(/^\[parameters\('slackWebhookUrl'\)\]$/);
      const secrets = resourcesOfType('keyvault', 'Microsoft.KeyVault/vaults/secrets');
      expect(secrets.map((s) => properties(s).value)).toContain("[parameters('slackWebhookUrl')]");
    });

    it('turns basic-auth publishing (FTP and SCM) off (review item 10)', () => {
      const policies = resourcesOfType(
        'function-app',
        'Microsoft.Web/sites/basicPublishingCredentialsPolicies',
      );
      const byName = Object.fromEntries(policies.map((p) => [String(p.name), properties(p).allow]));
      expect(Object.values(byName)).toEqual([false, false]);
      expect(Object.keys(byName).join(' ')).toMatch(/'ftp'.*'scm'|ftp.*scm/);
    });
  },
);
