/**
 * `GET /api/health`: whether the dependencies the app needs answer, each probed through a port (adapters in
 * src/infra/health-probes.ts) with a short timeout. Cheap by design: one result is shared by every request for
 * HEALTH_CACHE_MS, so a load balancer or availability test polling it costs one probe round per few seconds.
 * The report names dependencies and says how long each took; never an endpoint, a key or an error message.
 */

/** One dependency: `check` resolves when it answers, rejects (or is aborted through `signal`) otherwise. */
export interface HealthProbe {
  /** Stable name in the report: `cosmos`, `blob`, `identityStore`, `slack`. */
  readonly name: string;
  check(signal: AbortSignal): Promise<void>;
}

/** How long one probe may take before its dependency counts as unavailable, ms. */
export const HEALTH_TIMEOUT_MS = 2_000;

/** How long one health result is served before the dependencies are probed again, ms. */
export const HEALTH_CACHE_MS = 5_000;

export interface DependencyHealth {
  name: string;
  status: 'ok' | 'unavailable';
  /** Time to the answer (or to the timeout), ms. */
  latencyMs: number;
  /** Why it is unavailable, without details that could reveal where it is. */
  reason?: 'timeout' | 'error';
}

export interface HealthReport {
  status: 'ok' | 'unavailable';
  checkedAt: string;
  dependencies: DependencyHealth[];
}

async function probe(dependency: HealthProbe, timeoutMs: number): Promise<DependencyHealth> {
  const started = performance.now();
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve('timeout');
    }, timeoutMs);
  });
  try {
    const outcome = await Promise.race([
      dependency.check(controller.signal).then(() => 'ok' as const),
      timeout,
    ]);
    const latencyMs = Math.round(performance.now() - started);
    return outcome === 'ok'
      ? { name: dependency.name, status: 'ok', latencyMs }
      : { name: dependency.name, status: 'unavailable', latencyMs, reason: 'timeout' };
  } catch {
    const latencyMs = Math.round(performance.now() - started);
    return { name: dependency.name, status: 'unavailable', latencyMs, reason: 'error' };
  } finally {
    clearTimeout(timer);
  }
}

/** Probes every dependency at once; the app is `ok` only when all are. */
export async function checkHealth(
  probes: readonly HealthProbe[],
  timeoutMs = HEALTH_TIMEOUT_MS,
  now: () => Date = () => new Date(),
): Promise<HealthReport> {
  const dependencies = await Promise.all(probes.map((p) => probe(p, timeoutMs)));
  return {
    status: dependencies.every((d) => d.status === 'ok') ? 'ok' : 'unavailable',
    checkedAt: now().toISOString(),
    dependencies,
  };
}

export interface HealthHandlerDeps {
  probes: readonly HealthProbe[];
  timeoutMs?: number;
  cacheMs?: number;
  now?: () => Date;
}

/** The `GET /api/health` handler: 200 when every dependency answers, else 503; cached for `cacheMs`. */
export function makeGetHealth(deps: HealthHandlerDeps) {
  const now = deps.now ?? (() => new Date());
  const cacheMs = deps.cacheMs ?? HEALTH_CACHE_MS;
  let cached: { at: number; report: Promise<HealthReport> } | undefined;
  return async function getHealth(): Promise<{
    status: number;
    jsonBody: HealthReport;
    headers: Record<string, string>;
  }> {
    const at = now().getTime();
    if (!cached || at - cached.at >= cacheMs) {
      // Concurrent requests share one probe round.
      cached = { at, report: checkHealth(deps.probes, deps.timeoutMs ?? HEALTH_TIMEOUT_MS, now) };
    }
    const report = await cached.report;
    const ok = report.status === 'ok';
    return {
      status: ok ? 200 : 503,
      jsonBody: report,
      headers: {
        'cache-control': 'no-store',
        ...(ok ? {} : { 'retry-after': String(Math.ceil(cacheMs / 1000)) }),
      },
    };
  };
}
