/**
 * The threshold rules live twice until rules become data: in the Stream Analytics query (asa/*.asaql) and in the
 * local evaluator (src/alerts/rules.ts, THRESHOLD_RULES). This test parses every threshold rule out of the ASA
 * queries (its CTE: rule name, kind, metric, the threshold column, the WHERE comparison, the sliding window and
 * the HAVING count) and fails when the two differ in any of them, either way.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { THRESHOLD_RULES, type ThresholdRule } from '../../../src/alerts/rules.js';

const ASA_DIR = join(import.meta.dirname, '../../../asa');
const UNIT_MS: Record<string, number> = {
  second: 1000,
  ss: 1000,
  s: 1000,
  minute: 60_000,
  mi: 60_000,
  n: 60_000,
  hour: 3_600_000,
  hh: 3_600_000,
  day: 86_400_000,
  dd: 86_400_000,
  d: 86_400_000,
};

/** The query without `--` comments (no string literal in our queries holds `--`). */
const withoutComments = (text: string) => text.replace(/--[^\n]*/g, '');

/** Each `Name AS ( ... )` block of the WITH clause, by balanced parentheses. */
function ctes(query: string): { name: string; body: string }[] {
  const out: { name: string; body: string }[] = [];
  const head = /(\w+)\s+AS\s*\(/gi;
  for (let m = head.exec(query); m; m = head.exec(query)) {
    let depth = 1;
    let i = head.lastIndex;
    for (; i < query.length && depth > 0; i++) {
      if (query[i] === '(') depth++;
      else if (query[i] === ')') depth--;
    }
    out.push({ name: m[1] ?? '', body: query.slice(head.lastIndex, i - 1) });
    head.lastIndex = i;
  }
  return out;
}

const one = (body: string, pattern: RegExp, what: string, cte: string): RegExpExecArray => {
  const all = [...body.matchAll(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`))];
  if (all.length !== 1) throw new Error(`${cte}: expected one ${what}, found ${all.length}`);
  return all[0] as RegExpExecArray;
};

/** A threshold rule as the ASA query states it, with every place its constants appear. */
function thresholdRulesOf(query: string): ThresholdRule[] {
  return ctes(withoutComments(query))
    .filter((c) => /'threshold'\s+AS\s+kind\b/i.test(c.body))
    .map(({ name, body }) => {
      const rule = one(body, /'([^']+)'\s+AS\s+rule\b/i, 'rule name', name)[1] ?? '';
      const metric = one(body, /'([^']+)'\s+AS\s+metric\b/i, 'metric', name)[1] ?? '';
      const column = Number(one(body, /(-?[\d.]+)\s+AS\s+threshold\b/i, 'threshold column', name)[1]);
      const where = one(body, /WHERE\s+(\w+)\s*>\s*(-?[\d.]+)/i, 'WHERE comparison', name);
      const valueOf = one(body, /MAX\((\w+)\)\s+AS\s+value\b/i, 'value column', name)[1];
      const window = one(body, /SlidingWindow\(\s*(\w+)\s*,\s*(\d+)\s*\)/i, 'sliding window', name);
      const count = Number(one(body, /HAVING\s+COUNT\(\*\)\s*>=\s*(\d+)/i, 'HAVING count', name)[1]);
      const unit = UNIT_MS[(window[1] ?? '').toLowerCase()];
      if (unit === undefined) throw new Error(`${name}: unknown window unit ${window[1] ?? ''}`);
      // One rule, one metric and one threshold: the WHERE, the value and the reported threshold must agree.
      expect({ where: where[1], value: valueOf, whereThreshold: Number(where[2]) }).toEqual({
        where: metric,
        value: metric,
        whereThreshold: column,
      });
      return { rule, metric, above: column, windowMs: unit * Number(window[2]), minCount: count };
    });
}

const queries = readdirSync(ASA_DIR)
  .filter((f) => f.endsWith('.asaql'))
  .map((f) => ({ file: f, text: readFileSync(join(ASA_DIR, f), 'utf8') }));

describe('ASA query and local evaluator: the same threshold rules', () => {
  it('finds the ASA queries', () => {
    expect(queries.map((q) => q.file)).toContain('anomalies.asaql');
  });

  it('has exactly the threshold rules of src/alerts/rules.ts: names, metrics, thresholds, windows, counts', () => {
    const fromAsa = queries.flatMap((q) => thresholdRulesOf(q.text));
    const byName = (a: ThresholdRule, b: ThresholdRule) => a.rule.localeCompare(b.rule);
    expect(fromAsa.sort(byName)).toEqual([...THRESHOLD_RULES].sort(byName));
  });

  it('reads a rule the way it is written (the parser itself)', () => {
    const query = `WITH T AS (SELECT 1 FROM X), R AS (
      SELECT deviceId, 'r' AS rule, 'threshold' AS kind, 'hum' AS metric, MAX(hum) AS value,
             7.5 AS threshold FROM T WHERE hum > 7.5 GROUP BY deviceId, SlidingWindow(second, 30) HAVING COUNT(*) >= 2)`;
    expect(thresholdRulesOf(query)).toEqual([
      { rule: 'r', metric: 'hum', above: 7.5, windowMs: 30_000, minCount: 2 },
    ]);
    expect(() => thresholdRulesOf(query.replace('WHERE hum > 7.5', 'WHERE hum > 7'))).toThrow();
  });
});
