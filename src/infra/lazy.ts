/**
 * Runs `init` once, on first use, and hands every caller the same result; a failed `init` is forgotten so
 * the next caller tries again (e.g. an emulator that was not up yet). Used for "create the container or
 * table on first use".
 */
export function onFirstUse<T>(init: () => Promise<T>): () => Promise<T> {
  let ready: Promise<T> | undefined;
  return () => {
    ready ??= init().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
}
