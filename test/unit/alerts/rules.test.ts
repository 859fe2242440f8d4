import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  evaluateChangePoints,
  evaluateSpikes,
  evaluateThreshold,
  THRESHOLD_RULES,
  type TelemetryPoint,
} from '../../../src/alerts/rules.js';

const asa = (file: string) => new URL(`../../../asa/${file}`, import.meta.url);

interface TestCase {
  Name: string;
  Inputs: { FilePath: string }[];
  ExpectedOutputs: { FilePath: string }[];
}

/** The same input files the ASA CI tool reads, in the ASA input shape. */
function points(file: string): TelemetryPoint[] {
  const rows = JSON.parse(readFileSync(asa(`test/${file}`), 'utf8')) as {
    ts: string;
    IoTHub: { ConnectionDeviceId: string };
    [k: string]: unknown;
  }[];
  return rows.map(({ ts, IoTHub, ...values }) => ({
    deviceId: IoTHub.ConnectionDeviceId,
    time: Date.parse(ts),
    values,
  }));
}

describe('local rule evaluator', () => {
  const config = JSON.parse(readFileSync(asa('test/testConfig.json'), 'utf8')) as { TestCases: TestCase[] };

  it.each(config.TestCases.map((c) => [c.Name, c]))(
    'reproduces the expected output of asa/test case "%s"',
    (_name, testCase) => {
      const input = testCase.Inputs.flatMap((i) => points(i.FilePath));
      const expected = testCase.ExpectedOutputs.flatMap(
        (o) => JSON.parse(readFileSync(asa(`test/${o.FilePath}`), 'utf8')) as Record<string, unknown>[],
      ).map((r) => ({ ...r, windowEnd: new Date(Date.parse(String(r.windowEnd))).toISOString() }));
      const actual = THRESHOLD_RULES.flatMap((rule) => evaluateThreshold(input, rule));
      expect(actual).toEqual(expected);
    },
  );

  it('evaluates a window at exits too, and excludes an event exactly W before (window is (t-W, t])', () => {
    const rule = { rule: 'r', metric: 'v', above: 0, windowMs: 60_000, minCount: 2 };
    const p = (t: number): TelemetryPoint => ({ deviceId: 'd', time: t, values: { v: 1 } });
    expect(evaluateThreshold([p(0), p(60_000)], rule)).toEqual([]);
    expect(evaluateThreshold([p(0), p(30_000), p(60_000)], rule).map((o) => o.windowEnd)).toEqual([
      '1970-01-01T00:00:30.000Z',
      '1970-01-01T00:01:00.000Z',
    ]);
  });

  it('approximates spikes and dips with a robust z-score', () => {
    const series = [20, 21, 20, 19, 20, 21, 20, 19, 20, 35, 20, 5].map((v, i): TelemetryPoint => ({
      deviceId: 'd',
      time: i * 1000,
      values: { temperature: v },
    }));
    const out = evaluateSpikes(series, {
      metric: 'temperature',
      history: 20,
      zThreshold: 3.5,
      rule: 'temperature-spike',
    });
    expect(out.map((o) => [o.kind, o.value])).toEqual([
      ['spike', 35],
      ['dip', 5],
    ]);
  });
});

describe('change-point approximation', () => {
  it('marks a persistent level shift once, at its first value, and not the noise before it', () => {
    const levels = [
      ...Array.from({ length: 30 }, (_, i) => 20 + (i % 3) * 0.2),
      ...Array.from({ length: 30 }, (_, i) => 30 + (i % 3) * 0.2),
    ];
    const series = levels.map((v, i): TelemetryPoint => ({
      deviceId: 'd',
      time: i * 60_000,
      values: { temperature: v },
    }));
    const out = evaluateChangePoints(series, {
      metric: 'temperature',
      window: 10,
      tThreshold: 8,
      rule: 'temperature-changepoint',
    });
    expect(out.map((o) => [o.kind, o.value])).toEqual([['changepoint', 30]]);
    expect(out[0]?.windowEnd).toBe(new Date(30 * 60_000).toISOString());
  });
});
