/**
 * The local rule evaluator: the same rules as asa/anomalies.asaql, over a stream of telemetry, producing
 * records in the same output schema. Used by the embedded local run and by tests of the asa/test cases.
 *
 * - Threshold rules: exact ASA semantics of `WHERE value > threshold GROUP BY device, SlidingWindow(W)
 *   HAVING COUNT(*) >= N`: a sliding window (t - W, t] is evaluated whenever an event enters (t = event time) or
 *   leaves (t = event time + W) it, and emits when HAVING holds, with System.Timestamp() = t.
 * - Spikes and dips: an approximation, not ASA's model: a robust z-score of each value against the median and
 *   MAD of the device's previous `history` values; |z| above `zThreshold` is an anomaly (score = |z|).
 */

export interface TelemetryPoint {
  deviceId: string;
  /** Device time, epoch ms. */
  time: number;
  values: Record<string, unknown>;
}

/** An anomaly record in the output schema of asa/anomalies.asaql. */
export interface RuleOutput {
  deviceId: string;
  rule: string;
  kind: 'threshold' | 'spike' | 'dip';
  metric: string;
  value: number;
  score: number | null;
  threshold: number | null;
  windowEnd: string;
}

export interface ThresholdRule {
  rule: string;
  metric: string;
  /** Readings strictly above this count. */
  above: number;
  windowMs: number;
  minCount: number;
}

/** The rules of asa/anomalies.asaql; keep the two in step. */
export const THRESHOLD_RULES: readonly ThresholdRule[] = [
  { rule: 'temperature-high', metric: 'temperature', above: 40, windowMs: 5 * 60_000, minCount: 3 },
];

const numeric = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? v : undefined;

function byDevice(points: readonly TelemetryPoint[]): Map<string, TelemetryPoint[]> {
  const map = new Map<string, TelemetryPoint[]>();
  for (const p of points) map.set(p.deviceId, [...(map.get(p.deviceId) ?? []), p]);
  for (const list of map.values()) list.sort((a, b) => a.time - b.time);
  return map;
}

/** Evaluates one threshold rule exactly as ASA's sliding window does; outputs ordered by time, then device. */
export function evaluateThreshold(points: readonly TelemetryPoint[], rule: ThresholdRule): RuleOutput[] {
  const out: RuleOutput[] = [];
  for (const [deviceId, list] of byDevice(points)) {
    const hits = list
      .map((p) => ({ time: p.time, value: numeric(p.values[rule.metric]) }))
      .filter((h): h is { time: number; value: number } => h.value !== undefined && h.value > rule.above);
    const moments = [...new Set(hits.flatMap((h) => [h.time, h.time + rule.windowMs]))].sort((a, b) => a - b);
    for (const t of moments) {
      const inWindow = hits.filter((h) => h.time > t - rule.windowMs && h.time <= t);
      if (inWindow.length < rule.minCount) continue;
      out.push({
        deviceId,
        rule: rule.rule,
        kind: 'threshold',
        metric: rule.metric,
        value: Math.max(...inWindow.map((h) => h.value)),
        score: null,
        threshold: rule.above,
        windowEnd: new Date(t).toISOString(),
      });
    }
  }
  return out.sort((a, b) => a.windowEnd.localeCompare(b.windowEnd) || a.deviceId.localeCompare(b.deviceId));
}

/** The approximation of AnomalyDetection_SpikeAndDip described in the module comment. */
export function evaluateSpikes(
  points: readonly TelemetryPoint[],
  options: { metric: string; history: number; zThreshold: number; rule: string },
): RuleOutput[] {
  const out: RuleOutput[] = [];
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
  };
  for (const [deviceId, list] of byDevice(points)) {
    const seen: number[] = [];
    for (const p of list) {
      const value = numeric(p.values[options.metric]);
      if (value === undefined) continue;
      if (seen.length >= Math.min(options.history, 8)) {
        const window = seen.slice(-options.history);
        const med = median(window);
        const mad = median(window.map((x) => Math.abs(x - med))) || 1e-9;
        const z = (0.6745 * (value - med)) / mad;
        if (Math.abs(z) > options.zThreshold) {
          out.push({
            deviceId,
            rule: options.rule,
            kind: z > 0 ? 'spike' : 'dip',
            metric: options.metric,
            value,
            score: Math.abs(z),
            threshold: null,
            windowEnd: new Date(p.time).toISOString(),
          });
        }
      }
      seen.push(value);
    }
  }
  return out;
}
