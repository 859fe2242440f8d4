import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { FORCED_EXIT_CODE, handleShutdownSignals } from '../../../tools/shutdown-signals.js';

function setup() {
  const signals = new EventEmitter();
  const lines: string[] = [];
  const exits: number[] = [];
  const calls: string[] = [];
  let finish: () => void = () => undefined;
  const { begin } = handleShutdownSignals({
    signals,
    log: (line) => lines.push(line),
    exit: (code) => exits.push(code),
    steps: (reason) => {
      calls.push(reason);
      return new Promise<void>((resolve) => (finish = resolve));
    },
  });
  return {
    signals,
    lines,
    exits,
    calls,
    begin,
    finish: () => {
      finish();
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('handleShutdownSignals', () => {
  it('runs the steps once whatever signals arrive, and exits 0 when they are done', async () => {
    const s = setup();
    s.signals.emit('SIGINT');
    s.signals.emit('SIGTERM');
    expect(s.calls).toEqual(['SIGINT']);
    expect(s.exits).toEqual([]);
    s.finish();
    await settle();
    expect(s.exits).toEqual([0]);
    expect(s.lines).toContain('stopped.');
  });

  it('says it is still saving on the second signal and forces the exit (130) on the third', async () => {
    const s = setup();
    s.signals.emit('SIGINT');
    s.signals.emit('SIGINT');
    expect(s.lines.at(-1)).toMatch(/still stopping and saving data; press Ctrl-C once more/);
    expect(s.exits).toEqual([]);
    s.signals.emit('SIGINT');
    expect(s.exits).toEqual([FORCED_EXIT_CODE]);
    expect(FORCED_EXIT_CODE).toBe(130);
    s.finish();
    await settle();
    expect(s.exits).toEqual([130]); // the steps finishing later do not exit a second time
  });

  it('starts the same shutdown without a signal (a child exited), and a signal then counts as the second', () => {
    const s = setup();
    s.begin('func exited');
    s.signals.emit('SIGHUP');
    expect(s.calls).toEqual(['func exited']);
    expect(s.lines.at(-1)).toMatch(/^SIGHUP: still stopping/);
  });

  it('exits 1 when a step fails, saying why', async () => {
    const signals = new EventEmitter();
    const lines: string[] = [];
    const exits: number[] = [];
    handleShutdownSignals({
      signals,
      log: (line) => lines.push(line),
      exit: (code) => exits.push(code),
      steps: () => Promise.reject(new Error('Azurite did not stop')),
    });
    signals.emit('SIGTERM');
    await settle();
    expect(exits).toEqual([1]);
    expect(lines.at(-1)).toBe('shutdown failed: Azurite did not stop');
  });
});
