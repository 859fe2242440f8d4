import { describe, expect, it } from 'vitest';
import { ArgsError, parseReplayArgs } from '../../../tools/replay/args.js';

// `npm run replay`'s command line (tools/replay/args.ts): what it accepts, and a clear ArgsError (exit 2) for the rest.

describe('parseReplayArgs', () => {
  it('reads a full command line; an instant without a zone is UTC', () => {
    const args = parseReplayArgs([
      '--from',
      '2026-11-23T10:00',
      '--to',
      '2026-11-24',
      '--stream',
      'telemetry',
      '--stream',
      'diagnostics',
      '--device',
      'a',
      '--device',
      'b b',
      '--dry-run',
      '--checkpoint',
      'x.ckpt',
      '--hub',
      'replay2',
    ]);
    expect(args).toEqual({
      fromMs: Date.UTC(2026, 10, 23, 10),
      toMs: Date.UTC(2026, 10, 24),
      streams: ['telemetry', 'diagnostics'],
      devices: ['a', 'b b'],
      dryRun: true,
      checkpoint: 'x.ckpt',
      connection: undefined,
      namespace: undefined,
      hub: 'replay2',
    });
  });

  it('keeps an explicit offset', () => {
    const args = parseReplayArgs(['--from', '2026-11-23T10:00:00+02:00', '--to', '2026-11-23T10:00:00.5Z']);
    expect(args.fromMs).toBe(Date.UTC(2026, 10, 23, 8));
    expect(args.toMs).toBe(Date.UTC(2026, 10, 23, 10, 0, 0, 500));
  });

  it.each([
    [[], /--from is required/],
    [['--from', '2026-11-23'], /--to is required/],
    [['--from', 'yesterday', '--to', '2026-11-23'], /--from "yesterday" is not an ISO 8601 instant/],
    [['--from', '2026-11-23T10:00Z', '--to', '2026-13-01'], /--to "2026-13-01" is not an ISO 8601 instant/],
    [['--from', '2026-11-24', '--to', '2026-11-23'], /--from must be before --to/],
    [['--from', '2026-11-23', '--to', '2026-11-23'], /--from must be before --to/],
    [['--from', '2026-11-23', '--to', '2026-11-24', '--stream', 'Tele/../x'], /is not a stream name/],
    [['--from', '2026-11-23', '--to', '2026-11-24', '--device', ' '], /--device needs a device id/],
    [['--from', '2026-11-23', '--to', '2026-11-24', '--connection', 'x', '--namespace', 'y'], /not both/],
    [['--from', '2026-11-23', '--to', '2026-11-24', '--bogus'], /Unknown option '--bogus'/],
    [['--from', '2026-11-23', '--to', '2026-11-24', 'stray'], /positional/i],
  ])('refuses %j', (argv, message) => {
    expect(() => parseReplayArgs(argv)).toThrow(ArgsError);
    expect(() => parseReplayArgs(argv)).toThrow(message);
  });
});
