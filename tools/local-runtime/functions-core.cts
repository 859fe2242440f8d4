// The local provider of `@azure/functions-core`, the module the Functions host gives the v4 library: it keeps
// every registration (binding metadata and handler) so the embedded runtime can serve them.
interface Registration {
  metadata: {
    name: string;
    bindings: Record<string, Record<string, unknown>>;
    retryOptions?: Record<string, unknown>;
  };
  callback: (...args: unknown[]) => Promise<unknown>;
}

const registrations: Registration[] = [];
let programmingModel: unknown;

export = {
  registrations,
  setProgrammingModel(model: unknown): void {
    programmingModel = model;
  },
  getProgrammingModel(): unknown {
    return programmingModel;
  },
  registerFunction(metadata: Registration['metadata'], callback: Registration['callback']) {
    registrations.push({ metadata, callback });
    return { dispose: () => undefined };
  },
  registerHook() {
    return { dispose: () => undefined };
  },
  log(): void {
    // The library's own diagnostics; the runtime logs what matters itself.
  },
};
