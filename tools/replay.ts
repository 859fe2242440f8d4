/**
 * `npm run replay -- --from <ISO> --to <ISO> [...]` (usage: tools/replay/args.ts, design: docs/adr/0013): re-sends
 * the raw archive's records of a time range to the replay hub, where replayTelemetry applies them to state
 * without archiving them again. Settings as `npm run reconcile` reads them: local.settings.sample.json, then
 * local.settings.json, then the environment. Exit 0 done, 1 failed, 2 bad arguments.
 */
import { EventHubProducerClient } from '@azure/event-hubs';
import { DefaultAzureCredential } from '@azure/identity';
import { BlobServiceClient } from '@azure/storage-blob';
import { existsSync, readFileSync } from 'node:fs';
import { ArgsError, parseReplayArgs, REPLAY_USAGE, type ReplayArgs } from './replay/args.js';
import { CheckpointError } from './replay/checkpoint.js';
import { replayArchive, type ReplayProgress } from './replay/replay-archive.js';
import { groupFrom, settingFrom } from './replay/settings.js';

const fromFile = (path: string): Record<string, string | undefined> =>
  existsSync(path)
    ? ((JSON.parse(readFileSync(path, 'utf8')) as { Values?: Record<string, string> }).Values ?? {})
    : {};

/** Where settings come from, highest first. */
const SOURCES = [process.env, fromFile('local.settings.json'), fromFile('local.settings.sample.json')];
const setting = (name: string) => settingFrom(SOURCES, name);

function archiveContainer() {
  const archive = groupFrom(SOURCES, ['ArchiveStorageConnectionString', 'ArchiveStorage__blobServiceUri']);
  if (!archive) throw new ArgsError('set ArchiveStorageConnectionString or ArchiveStorage__blobServiceUri');
  const service =
    archive.name === 'ArchiveStorageConnectionString'
      ? BlobServiceClient.fromConnectionString(archive.value)
      : new BlobServiceClient(archive.value, new DefaultAzureCredential());
  return service.getContainerClient(setting('RawArchiveContainerName') ?? 'telemetry-raw');
}

function producerFor(args: ReplayArgs, hub: string): EventHubProducerClient {
  const configured =
    args.connection || args.namespace
      ? undefined
      : groupFrom(SOURCES, ['ReplayEventHubConnection', 'ReplayEventHubConnection__fullyQualifiedNamespace']);
  const namespace =
    args.namespace ??
    (configured?.name === 'ReplayEventHubConnection__fullyQualifiedNamespace' ? configured.value : undefined);
  const connection =
    args.connection ?? (configured?.name === 'ReplayEventHubConnection' ? configured.value : undefined);
  if (connection && !namespace) {
    // A string with EntityPath names its hub itself (the SDK refuses a second, different name).
    return /;\s*EntityPath=/i.test(connection)
      ? new EventHubProducerClient(connection)
      : new EventHubProducerClient(connection, hub);
  }
  if (namespace) return new EventHubProducerClient(namespace, hub, new DefaultAzureCredential());
  throw new ArgsError('no replay hub: pass --connection or --namespace, or set ReplayEventHubConnection');
}

/** One line of progress: records/s and the ETA from the bytes of the range read so far. */
function progressLine(p: ReplayProgress): string {
  const seconds = p.elapsedMs / 1000;
  const rate = seconds > 0 ? Math.round(p.records / seconds) : 0;
  const done = p.totalBytes > 0 ? p.bytesRead / p.totalBytes : 1;
  const eta = done > 0 && done < 1 ? `${Math.ceil((seconds * (1 - done)) / done)} s` : '-';
  return `replay: ${p.records} records, ${p.messages} messages, ${p.batches} batches, ${rate} records/s, ${Math.round(done * 100)}% read, ETA ${eta}`;
}

async function main(): Promise<number> {
  let args: ReplayArgs;
  try {
    args = parseReplayArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof ArgsError)) throw error;
    console.error(`${error.message}\n${REPLAY_USAGE}`);
    return 2;
  }
  const hub = args.hub ?? setting('ReplayEventHubName') ?? 'replay';
  let container: ReturnType<typeof archiveContainer>;
  let producer: EventHubProducerClient | undefined;
  try {
    container = archiveContainer();
    producer = args.dryRun ? undefined : producerFor(args, hub);
  } catch (error) {
    if (!(error instanceof ArgsError)) throw error;
    console.error(error.message);
    return 2;
  }
  // Where it reads and writes, before anything is sent (account and hub only: never a key).
  console.log(
    `replay: archive ${container.url}${producer ? ` → ${producer.fullyQualifiedNamespace}/${producer.eventHubName}` : ' (dry run)'}`,
  );
  const tty = process.stdout.isTTY;
  let lastLine = 0;
  const onProgress = (p: ReplayProgress) => {
    if (tty) process.stdout.write(`\r${progressLine(p)}\u001b[K`);
    else if (Date.now() - lastLine >= 5000) {
      lastLine = Date.now();
      console.log(progressLine(p));
    }
  };
  try {
    const summary = await replayArchive({
      container,
      ...(producer ? { producer } : {}),
      hub,
      fromMs: args.fromMs,
      toMs: args.toMs,
      ...(args.streams ? { streams: args.streams } : {}),
      ...(args.devices ? { devices: new Set(args.devices) } : {}),
      dryRun: args.dryRun,
      ...(args.checkpoint ? { checkpointFile: args.checkpoint } : {}),
      onProgress,
    });
    if (tty) process.stdout.write('\n');
    if (args.dryRun) {
      console.log('stream\thour (UTC)\trecords');
      for (const [key, n] of [...summary.counts].sort()) console.log(`${key.replace(' ', '\t')}\t${n}`);
      console.log(
        `${summary.records} records in ${summary.messages} messages, ${summary.blobs} blobs; nothing sent`,
      );
    } else {
      console.log(progressLine(summary));
      console.log(
        `replay: done, ${summary.skipped} messages skipped as already sent (checkpoint); dead letters are not replayed`,
      );
    }
    return 0;
  } catch (error) {
    if (error instanceof CheckpointError || error instanceof ArgsError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  } finally {
    await producer?.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`replay failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
