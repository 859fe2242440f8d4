/**
 * The local rule evaluator of the embedded runtime (the stand-in for the ASA job): asa/anomalies.asaql's
 * threshold rules over each device's recent readings, each anomaly emitted once. Its memory is bounded: per
 * device, only readings inside the longest rule window and at most `maxPointsPerDevice` of them; at most
 * `maxDevices` devices (the least recently heard from is forgotten first); and the keys of emitted anomalies
 * are forgotten once their window can no longer be reached by a new reading.
 */
import {
  THRESHOLD_RULES,
  evaluateThreshold,
  type RuleOutput,
  type TelemetryPoint,
  type ThresholdRule,
} from '../../src/alerts/rules.js';

export interface RuleEvaluatorOptions {
  rules?: readonly ThresholdRule[];
  /** Readings kept per device at most (the newest win). */
  maxPointsPerDevice?: number;
  /** Devices kept at most (the least recently heard from is forgotten first). */
  maxDevices?: number;
}

interface DeviceWindow {
  points: TelemetryPoint[];
  /** Emitted anomaly keys → their window end (epoch ms). */
  emitted: Map<string, number>;
}

export class LocalRuleEvaluator {
  private readonly rules: readonly ThresholdRule[];
  private readonly horizonMs: number;
  private readonly maxPoints: number;
  private readonly maxDevices: number;
  private readonly devices = new Map<string, DeviceWindow>();

  constructor(options: RuleEvaluatorOptions = {}) {
    this.rules = options.rules ?? THRESHOLD_RULES;
    this.horizonMs = this.rules.reduce((longest, rule) => Math.max(longest, rule.windowMs), 0);
    this.maxPoints = options.maxPointsPerDevice ?? 1000;
    this.maxDevices = options.maxDevices ?? 10_000;
  }

  /** Adds one reading (device time in `point.time`); returns the anomalies it completes, each only once. */
  add(point: TelemetryPoint): RuleOutput[] {
    const window = this.devices.get(point.deviceId) ?? { points: [], emitted: new Map<string, number>() };
    this.devices.delete(point.deviceId); // re-inserted last: Map order is least recently heard from first
    this.devices.set(point.deviceId, window);
    if (this.devices.size > this.maxDevices) {
      const oldest = this.devices.keys().next();
      if (!oldest.done) this.devices.delete(oldest.value);
    }
    // A reading older than the window cannot share a window with this one.
    window.points = window.points.filter((p) => p.time > point.time - this.horizonMs);
    window.points.push(point);
    if (window.points.length > this.maxPoints) window.points.splice(0, window.points.length - this.maxPoints);
    const out: RuleOutput[] = [];
    for (const rule of this.rules) {
      for (const output of evaluateThreshold(window.points, rule)) {
        const key = `${output.rule}|${output.windowEnd}`;
        if (window.emitted.has(key)) continue;
        window.emitted.set(key, Date.parse(output.windowEnd));
        out.push(output);
      }
    }
    // A window ending before the oldest kept reading can never be evaluated again.
    const oldest = window.points[0]?.time ?? point.time;
    for (const [key, end] of window.emitted) if (end < oldest) window.emitted.delete(key);
    return out;
  }

  /** What is kept, for the soak benchmark and tests. */
  size(): { devices: number; points: number; emitted: number } {
    let points = 0;
    let emitted = 0;
    for (const window of this.devices.values()) {
      points += window.points.length;
      emitted += window.emitted.size;
    }
    return { devices: this.devices.size, points, emitted };
  }
}
