/**
 * The `func start` branch of `npm start` (Azure Functions Core Tools on PATH): Core Tools runs the app against
 * the embedded services. local.settings.json gets what works locally and outlives the run (the local Event Hubs
 * endpoint at its default port, as `UseDevelopmentStorage=true` names Azurite's); this run's emulator
 * endpoints, ports and PublicApiBaseUrl go to `func` as environment variables (Core Tools keeps an environment
 * variable over the same name in local.settings.json).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isLocalEmulatorConnection, isPlaceholderConnection } from './local-runtime/event-hub-connection.js';
import { DEFAULT_EVENTHUBS_PORT, localEventHubsConnectionString } from './local-eventhubs/config.js';

/**
 * The Event Hub triggers, the connection setting each needs and the settings naming its hub and consumer
 * group on the local endpoint. Must match the `app.eventHub` registrations of src/index.ts.
 */
export const EVENT_HUB_TRIGGERS = [
  {
    name: 'ingestTelemetry',
    setting: 'IotHubEventsConnection',
    local: { IotHubEventHubName: 'iothub-events', IngestConsumerGroup: 'ingest' },
    what: "the IoT Hub built-in endpoint's Event Hub-compatible connection string, and IotHubEventHubName",
  },
  {
    name: 'notifyAnomalies',
    setting: 'AnomaliesEventHubConnection',
    local: { AnomaliesEventHubName: 'anomalies', AnomaliesConsumerGroup: 'notify' },
    what: 'the connection string of the Event Hub that Stream Analytics writes anomalies to',
  },
  {
    name: 'replayTelemetry',
    setting: 'ReplayEventHubConnection',
    local: { ReplayEventHubName: 'replay', ReplayConsumerGroup: 'replay' },
    what: 'the connection string of the replay Event Hub (npm run replay sends to it)',
  },
] as const;

/** A sample placeholder (`<key>`), an empty value, or the old in-process stand-in (`sb://localhost/`). */
export const isPlaceholder = isPlaceholderConnection;

const disabledKey = (name: string) => `AzureWebJobs.${name}.Disabled`;
const isTrue = (value: string | undefined) => value !== undefined && /^(true|1)$/i.test(value.trim());

/** Whether a trigger's connection is usable in these settings (or a managed-identity namespace is given). */
const connected = (settings: Record<string, string | undefined>, setting: string) =>
  !isPlaceholder(settings[setting]) || !isPlaceholder(settings[`${setting}__fullyQualifiedNamespace`]);

/** Whether a trigger's connection names a real Event Hub (not the local endpoint). */
const connectedElsewhere = (settings: Record<string, string | undefined>, setting: string) =>
  !isPlaceholder(settings[`${setting}__fullyQualifiedNamespace`]) ||
  (!isPlaceholder(settings[setting]) && !isLocalEmulatorConnection(settings[setting]));

/**
 * local.settings.json's Values made from the sample's: an Event Hub trigger without a usable connection gets
 * the local endpoint (`localEventHubs`: its connection string at the default port) with the local hub and
 * consumer group names; without one (`null`) its connection is left out and the trigger disabled. No port of a
 * particular run is written.
 */
export function funcLocalSettings(
  sample: Record<string, string>,
  localEventHubs: string | null = localEventHubsConnectionString(DEFAULT_EVENTHUBS_PORT),
): Record<string, string> {
  const unconnected = EVENT_HUB_TRIGGERS.filter((trigger) => !connected(sample, trigger.setting));
  if (localEventHubs !== null)
    return {
      ...sample,
      ...Object.fromEntries(
        unconnected.flatMap((trigger) => [
          [trigger.setting, localEventHubs],
          ...Object.entries(trigger.local),
        ]),
      ),
    };
  // Left out rather than kept as a placeholder that looks filled in; the trigger waits for a real one.
  const leftOut = new Set<string>(unconnected.map((trigger) => trigger.setting));
  return {
    ...Object.fromEntries(Object.entries(sample).filter(([name]) => !leftOut.has(name))),
    ...Object.fromEntries(unconnected.map((trigger) => [disabledKey(trigger.name), 'true'])),
  };
}

/**
 * This run's settings for `func`, less the local Event Hubs settings of a trigger whose connection in
 * local.settings.json (or the environment) names a real Event Hub: Core Tools would take the environment's.
 */
export function funcRunSettings(
  run: Record<string, string>,
  given: Record<string, string | undefined>,
): Record<string, string> {
  const dropped = new Set<string>(
    EVENT_HUB_TRIGGERS.filter((trigger) => connectedElsewhere(given, trigger.setting)).flatMap((trigger) => [
      trigger.setting,
      ...Object.keys(trigger.local),
    ]),
  );
  // Never pass a placeholder connection either: it would hide a real one in the file.
  return Object.fromEntries(
    Object.entries(run).filter(
      ([name, value]) => !dropped.has(name) && !(name.endsWith('Connection') && isPlaceholder(value)),
    ),
  );
}

export interface FuncSettingsOptions {
  /** This run's settings (emulator endpoints, PublicApiBaseUrl): passed as environment variables only. */
  runSettings: Record<string, string>;
  log: (line: string) => void;
}

export interface FuncSettings {
  /** The environment `func start` is spawned with. */
  env: Record<string, string | undefined>;
  /** The settings the app under func sees: local.settings.json's Values under that environment. */
  effective: Record<string, string | undefined>;
}

/**
 * Prepares local.settings.json (written from the sample when missing) and the environment of `func start`;
 * logs each Event Hub trigger that will not run, and why.
 */
export function funcSettings(options: FuncSettingsOptions): FuncSettings {
  const { log } = options;
  if (!existsSync('local.settings.json')) {
    const sample = JSON.parse(readFileSync('local.settings.sample.json', 'utf8')) as {
      Values: Record<string, string>;
    };
    const file = { IsEncrypted: false, Values: funcLocalSettings(sample.Values) };
    writeFileSync('local.settings.json', `${JSON.stringify(file, null, 2)}\n`);
    log(
      'wrote local.settings.json from local.settings.sample.json (Event Hub triggers on the local endpoint, no ports of this run)',
    );
  }
  const file =
    (JSON.parse(readFileSync('local.settings.json', 'utf8')) as { Values?: Record<string, string> }).Values ??
    {};
  const given: Record<string, string | undefined> = { ...file, ...process.env };
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...funcRunSettings(options.runSettings, given),
  };
  const effective = { ...file, ...env };
  for (const trigger of EVENT_HUB_TRIGGERS) {
    const key = disabledKey(trigger.name);
    if (!connected(effective, trigger.setting)) {
      if (!isTrue(effective[key])) env[key] = effective[key] = 'true';
      log(
        `${trigger.name} is disabled: set ${trigger.setting} in local.settings.json (${trigger.what}) and remove ${key} to run it`,
      );
    } else if (isTrue(effective[key])) {
      log(`${trigger.name} is disabled by ${key} in local.settings.json: remove that line to run it`);
    }
  }
  return { env, effective };
}

export interface FuncStartOptions {
  /** The HTTP port `func start` listens on. */
  httpPort: number;
  /** The environment from funcSettings. */
  env: Record<string, string | undefined>;
  /** `npm start -- --keys`: `func start --enableAuth` (Core Tools then checks function keys as Azure does). */
  enableAuth?: boolean;
}

/** Spawns `func start --port N` with this run's settings in its environment (see funcSettings). */
export function startFunc(options: FuncStartOptions): ChildProcess {
  const auth = options.enableAuth ? ['--enableAuth'] : [];
  return spawn('func', ['start', '--port', String(options.httpPort), ...auth], {
    stdio: 'inherit',
    env: options.env,
  });
}
