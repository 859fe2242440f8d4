/**
 * The local rule evaluator: the same rules as asa/anomalies.asaql, over a stream of telemetry, producing
 * records in the same output schema. Used by the embedded local run and by tests of the asa/test cases.
 *
 * - Threshold rules: exact ASA semantics of `WHERE value > threshold GROUP BY device, SlidingWindow(W)
 *   HAVING COUNT(*) >= N`: a sliding window (t - W, t] is evaluated whenever an event enters (t = event time) or
 *   leaves (t = event time + W) it, and emits when HAVING holds, with System.Timestamp() = t.
 * - Spikes and dips: an approximation, not ASA's model: a robust z-score of each value against the median and
 *   MAD of the device's previous `history` values; |z| above `zThreshold` is an anomaly (score = |z|).
 * - Change points: an approximation, not ASA's model: a two-window mean-shift test. At each point, the mean of
 *   the last `window` values is compared with the mean of the `window` before them (Welch's t statistic); when
 *   it exceeds `tThreshold`, the change point is the split of those 2·`window` values that best separates
 *   two means (the CUSUM-style maximum of |mean difference| · sqrt(left·right/n)), and the points up to one
 *   `window` after it are not tested again.
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
  kind: 'threshold' | 'spike' | 'dip' | 'changepoint';
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
  for (const p of points) {
    const list = map.get(p.deviceId);
    if (list) list.push(p);
    else map.set(p.deviceId, [p]);
  }
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
        value: inWindow.reduce((max, h) => Math.max(max, h.value), -Infinity),
        score: null,
        threshold: rule.above,
        windowEnd: new Date(t).toISOString(),
      });
    }
  }
  return out.sort((a, b) => a.windowEnd.localeCompare(b.windowEnd) || a.deviceId.localeCompare(b.deviceId));
}

/** The numeric readings of `metric` in a device's points, in their order (other readings are skipped). */
const metricSeries = (list: readonly TelemetryPoint[], metric: string): { time: number; value: number }[] =>
  list.flatMap((p) => {
    const value = numeric(p.values[metric]);
    return value === undefined ? [] : [{ time: p.time, value }];
  });

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

/** Mean and sample variance. */
function stats(xs: readonly number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1);
  return { mean, variance };
}

/** The approximation of AnomalyDetection_SpikeAndDip described in the module comment. */
export function evaluateSpikes(
  points: readonly TelemetryPoint[],
  options: { metric: string; history: number; zThreshold: number; rule: string },
): RuleOutput[] {
  const out: RuleOutput[] = [];
  for (const [deviceId, list] of byDevice(points)) {
    const seen: number[] = [];
    for (const { time, value } of metricSeries(list, options.metric)) {
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
            windowEnd: new Date(time).toISOString(),
          });
        }
      }
      seen.push(value);
    }
  }
  return out;
}

/** The approximation of AnomalyDetection_ChangePoint described in the module comment. */
export function evaluateChangePoints(
  points: readonly TelemetryPoint[],
  options: { metric: string; window: number; tThreshold: number; rule: string },
): RuleOutput[] {
  const out: RuleOutput[] = [];
  const k = options.window;
  for (const [deviceId, list] of byDevice(points)) {
    const series = metricSeries(list, options.metric);
    let quietUntil = -1;
    for (let end = 2 * k; end <= series.length; end++) {
      if (end - k <= quietUntil) continue;
      const before = stats(series.slice(end - 2 * k, end - k).map((p) => p.value));
      const after = stats(series.slice(end - k, end).map((p) => p.value));
      const t =
        Math.abs(after.mean - before.mean) / Math.sqrt((before.variance + after.variance) / k || 1e-12);
      if (t <= options.tThreshold) continue;
      // Locate the shift inside the 2k span: the split that best separates two means.
      const span = series.slice(end - 2 * k, end);
      let best = 1;
      let bestScore = -1;
      for (let split = 1; split < span.length; split++) {
        const left = stats(span.slice(0, split).map((p) => p.value)).mean;
        const right = stats(span.slice(split).map((p) => p.value)).mean;
        const score = Math.abs(right - left) * Math.sqrt((split * (span.length - split)) / span.length);
        if (score > bestScore) [best, bestScore] = [split, score];
      }
      const first = span[best];
      if (!first) continue;
      out.push({
        deviceId,
        rule: options.rule,
        kind: 'changepoint',
        metric: options.metric,
        value: first.value,
        score: t,
        threshold: null,
        windowEnd: new Date(first.time).toISOString(),
      });
      quietUntil = end - 2 * k + best + k;
    }
  }
  return out;
}
