/**
 * Builds and runs tools/dotnet-eventhubs-probe (the .NET Event Hubs client the Functions host uses) from Node:
 * test/integration/local-eventhubs/dotnet-client.test.ts drives it against the local endpoint.
 */
import { execFile, spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';

const PROJECT = 'tools/dotnet-eventhubs-probe/probe.csproj';
const PROBE = '.cache/dotnet-eventhubs-probe/bin/Release/net10.0/dotnet-eventhubs-probe.dll';
// No MSBuild/compiler servers left running after a build; no telemetry or first-run banner.
const DOTNET_ENV = {
  DOTNET_CLI_TELEMETRY_OPTOUT: '1',
  DOTNET_NOLOGO: '1',
  DOTNET_CLI_USE_MSBUILD_SERVER: '0',
  MSBUILDDISABLENODEREUSE: '1',
};

/** One probe run: its exit code (0 ok, 2 refused/failed, 64 usage), duration and its JSON line. */
export interface ProbeRun {
  code: number;
  ms: number;
  out: Record<string, unknown>;
  stderr: string;
}

/** A value as .NET typed it (`Int32`, `DateTime`, `Byte[]` base64, …). */
export interface DotnetValue {
  type: string;
  value: unknown;
}

/** An event as EventData exposed it after a read. */
export interface DotnetEvent {
  partitionId: string;
  body: string;
  messageId: string | null;
  contentType: string | null;
  correlationId: string | null;
  sequenceNumber: number;
  offset: string;
  enqueuedTime: string;
  partitionKey: string | null;
  properties: Record<string, DotnetValue>;
  systemProperties: Record<string, DotnetValue>;
}

/** GetPartitionPropertiesAsync's answer. */
export interface DotnetPartition {
  id: string;
  eventHubName: string;
  isEmpty: boolean;
  beginningSequenceNumber: number;
  lastEnqueuedSequenceNumber: number;
  lastEnqueuedOffset: string;
  lastEnqueuedTime: string;
}

/** Why the probe cannot run here, or undefined when the .NET 10 SDK is on PATH. */
export function missingDotnet(): string | undefined {
  const sdks = spawnSync('dotnet', ['--list-sdks'], {
    encoding: 'utf8',
    env: { ...process.env, ...DOTNET_ENV },
  });
  if (sdks.error) return `dotnet is not on PATH (${sdks.error.message})`;
  if (!/^10\./m.test(sdks.stdout))
    return `no .NET 10 SDK (found: ${sdks.stdout.trim().split('\n').join(', ') || 'none'})`;
  return undefined;
}

/** `dotnet build -c Release` (restore into .cache/dotnet-eventhubs-probe/packages); its duration in ms. */
export function buildProbe(timeoutMs: number): number {
  const started = performance.now();
  const build = spawnSync(
    'dotnet',
    [
      'build',
      PROJECT,
      '-c',
      'Release',
      '--nologo',
      '-v',
      'q',
      '-nodeReuse:false',
      '-p:UseSharedCompilation=false',
    ],
    { encoding: 'utf8', env: { ...process.env, ...DOTNET_ENV }, timeout: timeoutMs },
  );
  if (build.status !== 0) throw new Error(`dotnet build failed:\n${build.stdout}\n${build.stderr}`);
  return Math.round(performance.now() - started);
}

/**
 * Runs one probe command; `env` carries EVENTHUBS_CONNECTION_STRING (never the command line, so it does not show
 * in process listings) and, for the processor, STORAGE_CONNECTION_STRING.
 */
export function runProbe(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<ProbeRun> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(
      'dotnet',
      [PROBE, ...args],
      { env: { ...process.env, ...DOTNET_ENV, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop() ?? '';
        let out: Record<string, unknown>;
        try {
          out = JSON.parse(line) as Record<string, unknown>;
        } catch {
          out = { unparsed: stdout.slice(0, 2000) };
        }
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, ms: Math.round(performance.now() - started), out, stderr });
      },
    );
  });
}
