/** The command line of `npm run replay` (docs/adr/0013): parsed and checked, or an ArgsError (exit 2). */
import { parseArgs } from 'node:util';
import { normalizeStreamName } from '../../src/telemetry/records.js';

export const REPLAY_USAGE = `usage: npm run replay -- --from <ISO> --to <ISO> [--stream <name>]… [--device <id>]… [--dry-run]
       [--checkpoint <file>] [--connection <Event Hubs connection string> | --namespace <fqdn>] [--hub replay]
  Re-sends the raw archive's records enqueued in [from, to) to the replay hub (replayTelemetry applies them).
  --stream, --device   only these (repeatable); default every stream and device
  --dry-run            print records per stream and hour; send nothing
  --checkpoint <file>  resume from / record progress in this file
  --connection         default: ReplayEventHubConnection (environment, local.settings.json, the sample)
  --namespace <fqdn>   a real namespace with DefaultAzureCredential (Azure Event Hubs Data Sender)`;

export class ArgsError extends Error {
  override name = 'ArgsError';
}

export interface ReplayArgs {
  fromMs: number;
  toMs: number;
  streams: string[] | undefined;
  devices: string[] | undefined;
  dryRun: boolean;
  checkpoint: string | undefined;
  connection: string | undefined;
  namespace: string | undefined;
  hub: string | undefined;
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/;

function instant(name: string, value: string | undefined): number {
  if (value === undefined)
    throw new ArgsError(`--${name} is required (an ISO 8601 instant, e.g. 2026-11-23T10:00Z)`);
  // No zone means UTC, like the archive's hours (Date.parse would take a date-time without one as local time).
  const zoned = /(Z|[+-]\d{2}:\d{2})$/.test(value) || !value.includes('T') ? value : `${value}Z`;
  const ms = ISO_INSTANT.test(value) ? Date.parse(zoned) : NaN;
  if (Number.isNaN(ms))
    throw new ArgsError(
      `--${name} ${JSON.stringify(value)} is not an ISO 8601 instant (e.g. 2026-11-23T10:00Z)`,
    );
  return ms;
}

/** Parses `argv` (without node and the script); throws ArgsError with a message for the user. */
export function parseReplayArgs(argv: readonly string[]): ReplayArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        stream: { type: 'string', multiple: true },
        device: { type: 'string', multiple: true },
        'dry-run': { type: 'boolean', default: false },
        checkpoint: { type: 'string' },
        connection: { type: 'string' },
        namespace: { type: 'string' },
        hub: { type: 'string' },
      },
    }));
  } catch (error) {
    throw new ArgsError(error instanceof Error ? error.message : String(error));
  }
  const fromMs = instant('from', values.from);
  const toMs = instant('to', values.to);
  if (fromMs >= toMs) throw new ArgsError('--from must be before --to');
  if (values.connection !== undefined && values.namespace !== undefined)
    throw new ArgsError('give --connection or --namespace, not both');
  const streams = values.stream?.map((s) => {
    const name = normalizeStreamName(s);
    if (name === undefined || name !== s)
      throw new ArgsError(`--stream ${JSON.stringify(s)} is not a stream name (e.g. telemetry)`);
    return name;
  });
  const devices = values.device?.map((d) => {
    if (d.trim() === '') throw new ArgsError('--device needs a device id');
    return d;
  });
  return {
    fromMs,
    toMs,
    streams,
    devices,
    dryRun: values['dry-run'],
    checkpoint: values.checkpoint,
    connection: values.connection,
    namespace: values.namespace,
    hub: values.hub,
  };
}
