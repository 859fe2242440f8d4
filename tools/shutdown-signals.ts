/**
 * One ordered shutdown for `npm start`, whatever signal arrives and however many times: the first SIGINT,
 * SIGTERM or SIGHUP runs the steps once and exits 0 when they are done; the second says it is still saving;
 * the third forces the exit (130, as a shell reports Ctrl-C).
 */

/** What a signal source needs to offer (process, or an EventEmitter in tests). */
export interface SignalSource {
  on(event: 'SIGINT' | 'SIGTERM' | 'SIGHUP', listener: () => void): unknown;
}

export interface ShutdownOptions {
  /** The ordered steps; called once, with the name of the signal (or reason) that started the shutdown. */
  steps: (reason: string) => Promise<void>;
  log: (line: string) => void;
  exit: (code: number) => void;
  signals?: SignalSource;
}

/** Exit code of a forced exit: 128 + SIGINT's number, what a shell reports for Ctrl-C. */
export const FORCED_EXIT_CODE = 130;

/** Installs the handlers; `begin(reason)` starts the same shutdown without a signal (e.g. a child exited). */
export function handleShutdownSignals(options: ShutdownOptions): { begin: (reason: string) => void } {
  const { log, exit } = options;
  let requests = 0;
  let done = false;
  const begin = (reason: string) => {
    if (done) return;
    requests++;
    if (requests === 1) {
      log(`shutting down (${reason})…`);
      options.steps(reason).then(
        () => {
          if (done) return; // forced out already
          done = true;
          log('stopped.');
          exit(0);
        },
        (error: unknown) => {
          if (done) return;
          done = true;
          log(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
          exit(1);
        },
      );
    } else if (requests === 2) {
      log(
        `${reason}: still stopping and saving data; press Ctrl-C once more to force the exit (unsaved data is lost)`,
      );
    } else {
      done = true;
      log(`${reason}: forced exit without saving`);
      exit(FORCED_EXIT_CODE);
    }
  };
  const signals = options.signals ?? process;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    signals.on(signal, () => {
      begin(signal);
    });
  }
  return { begin };
}
