/**
 * The `func start` branch of `npm start` (Azure Functions Core Tools on PATH): Core Tools runs the app against
 * the embedded services. local.settings.json gets only what works locally and outlives the run; this run's
 * emulator endpoints, ports and PublicApiBaseUrl go to `func` as environment variables (Core Tools keeps an
 * environment variable over the same name in local.settings.json).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/**
 * The Event Hub triggers and the connection setting each needs. Core Tools has no local Event Hubs: without a
 * real connection the trigger cannot start, so it is disabled (`AzureWebJobs.<name>.Disabled`) with a line
 * naming the setting to fill in. Must match the `app.eventHub` registrations of src/index.ts.
 */
export const EVENT_HUB_TRIGGERS = [
  {
    name: 'ingestTelemetry',
    setting: 'IotHubEventsConnection',
    what: "the IoT Hub built-in endpoint's Event Hub-compatible connection string, and IotHubEventHubName",
  },
  {
    name: 'notifyAnomalies',
    setting: 'AnomaliesEventHubConnection',
    what: 'the connection string of the Event Hub that Stream Analytics writes anomalies to',
  },
] as const;

/** A sample placeholder (`<key>`) or the embedded runtime's in-process stand-in (`sb://localhost`). */
export const isPlaceholder = (value: string | undefined): boolean =>
  value === undefined || value.trim() === '' || /[<>]|sb:\/\/localhost\b/i.test(value);

const disabledKey = (name: string) => `AzureWebJobs.${name}.Disabled`;
const isTrue = (value: string | undefined) => value !== undefined && /^(true|1)$/i.test(value.trim());

/** Whether a trigger's connection is usable in these settings (or a managed-identity namespace is given). */
const connected = (settings: Record<string, string | undefined>, setting: string) =>
  !isPlaceholder(settings[setting]) || !isPlaceholder(settings[`${setting}__fullyQualifiedNamespace`]);

/**
 * local.settings.json's Values made from the sample's: placeholders left out, and the Event Hub triggers that
 * have no usable connection disabled. Nothing of a particular run (no port) is written.
 */
export function funcLocalSettings(sample: Record<string, string>): Record<string, string> {
  const unconnected = EVENT_HUB_TRIGGERS.filter((trigger) => !connected(sample, trigger.setting));
  // Left out rather than kept as a placeholder that looks filled in; the trigger waits for a real one.
  const leftOut = new Set<string>(unconnected.map((trigger) => trigger.setting));
  return {
    ...Object.fromEntries(Object.entries(sample).filter(([name]) => !leftOut.has(name))),
    ...Object.fromEntries(unconnected.map((trigger) => [disabledKey(trigger.name), 'true'])),
  };
}

export interface FuncStartOptions {
  /** The HTTP port `func start` listens on. */
  httpPort: number;
  /** This run's settings (emulator endpoints, PublicApiBaseUrl): passed as environment variables only. */
  runSettings: Record<string, string>;
  /** `npm start -- --keys`: `func start --enableAuth` (Core Tools then checks function keys as Azure does). */
  enableAuth?: boolean;
  log: (line: string) => void;
}

/** Prepares local.settings.json, then spawns `func start --port N` with this run's settings in its environment. */
export function startFunc(options: FuncStartOptions): ChildProcess {
  const { log } = options;
  if (!existsSync('local.settings.json')) {
    const sample = JSON.parse(readFileSync('local.settings.sample.json', 'utf8')) as {
      Values: Record<string, string>;
    };
    const file = { IsEncrypted: false, Values: funcLocalSettings(sample.Values) };
    writeFileSync('local.settings.json', `${JSON.stringify(file, null, 2)}\n`);
    log('wrote local.settings.json from local.settings.sample.json (placeholders left out, no ports)');
  }
  const file =
    (JSON.parse(readFileSync('local.settings.json', 'utf8')) as { Values?: Record<string, string> }).Values ??
    {};
  // The embedded runtime's in-process Event Hubs do not exist under Core Tools: never pass their stand-ins.
  const run = Object.fromEntries(
    Object.entries(options.runSettings).filter(
      ([name, value]) => !(name.endsWith('Connection') && isPlaceholder(value)),
    ),
  );
  const env: Record<string, string | undefined> = { ...process.env, ...run };
  const effective = { ...file, ...env };
  for (const trigger of EVENT_HUB_TRIGGERS) {
    if (connected(effective, trigger.setting)) continue;
    if (!isTrue(effective[disabledKey(trigger.name)])) env[disabledKey(trigger.name)] = 'true';
    log(
      `${trigger.name} is disabled: set ${trigger.setting} in local.settings.json (${trigger.what}) and remove ${disabledKey(trigger.name)} to run it`,
    );
  }
  const auth = options.enableAuth ? ['--enableAuth'] : [];
  return spawn('func', ['start', '--port', String(options.httpPort), ...auth], { stdio: 'inherit', env });
}
