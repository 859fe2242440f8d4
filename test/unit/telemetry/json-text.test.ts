import { describe, expect, it } from 'vitest';
import { isFaithfulNumber, parseJsonText } from '../../../src/telemetry/json-text.js';

describe('isFaithfulNumber', () => {
  it.each([
    '0',
    '-0',
    '1',
    '1.50',
    '1.5e0',
    '0.1',
    '21.5',
    '-273.15',
    '1e21',
    '1E+21',
    '123456789012345',
    '9007199254740991',
    '1e308',
    '1e-300',
    '0e99999999999999999999',
    // What printf("%.17g") and cJSON print: a double's value with more digits than the shortest round trip.
    '0.33333333333333331',
    '0.10000000000000001',
    '-273.14999999999998',
    '1.7976931348623157e+308',
    '0.12345678901234567890',
    '9007199254740992',
    '100000000000000000000000',
    '2.2250738585072014e-308',
    '5e-324',
  ])('%s is faithful', (token) => {
    expect(isFaithfulNumber(token)).toBe(true);
  });
  it.each([
    '1e999',
    '-1e400',
    '1e-400',
    '123456789012345678901234567890',
    '9007199254740993',
    '-9007199254740993',
    '12345678901234567',
    '1.8e308',
    '2e-324',
    // Subnormal: fewer than 53 bits left, the digits are lost.
    '1.2345678901234567e-320',
  ])('%s is not', (token) => {
    expect(isFaithfulNumber(token)).toBe(false);
  });

  it('holds every double printed with 17 significant digits (%.17g) as a number', () => {
    let seed = 12345;
    const random = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const flagged: string[] = [];
    for (let i = 0; i < 2_000; i++) {
      const scale = 10 ** Math.floor(random() * 40 - 20);
      const token = ((random() - 0.5) * scale).toPrecision(17);
      // %.17g prints values in [1e16, 1e17) as integers: those are judged as integer tokens (ids, counters).
      if (/^-?\d+$/.test(token)) continue;
      if (!isFaithfulNumber(token)) flagged.push(token);
    }
    expect(flagged).toEqual([]);
  });
});

describe('parseJsonText', () => {
  it('gives what JSON.parse gives when every number is faithful', () => {
    for (const text of [
      '{"a":1}',
      '[]',
      '[1]',
      '"x"',
      'null',
      '[[1,[2]],{"k":[3,{"l":"]"}]}]',
      '{"u":"\\u00e9\\"\\\\"}',
    ]) {
      expect(parseJsonText(text).value).toEqual(JSON.parse(text));
    }
  });

  it('finds the exact text of each top-level array element, strings with brackets, commas and escapes included', () => {
    const elements = ['{"a":"],[,\\"{"}', '[1, [2,3]]', '"\\\\"', '-1.5e+3', 'true', 'null', '{}'];
    const parsed = parseJsonText(`\n[ ${elements.join(' ,\t')}\r\n]  `);
    expect(parsed.elementSources).toEqual(elements);
    expect(parsed.source.startsWith('[')).toBe(true);
    expect(parseJsonText('[]').elementSources).toEqual([]);
  });

  it('keeps unfaithful numbers, at any depth, as the string of their text', () => {
    expect(parseJsonText('{"a":[1e999,{"b":-123456789012345678901}], "c":"1e999", "d":2}').value).toEqual({
      a: ['1e999', { b: '-123456789012345678901' }],
      c: '1e999',
      d: 2,
    });
  });

  it('finds unfaithful numbers wherever JSON lets a number stand: pretty-printed, top level, in arrays', () => {
    const big = '123456789012345678901234567890';
    expect(parseJsonText(`{\n  "id": ${big},\n  "t":\t${big}\n}`).value).toEqual({ id: big, t: big });
    expect(parseJsonText(big).value).toBe(big);
    expect(parseJsonText(` -${big} `).value).toBe(`-${big}`);
    expect(parseJsonText(`[1,${big}]`).value).toEqual([1, big]);
    expect(parseJsonText(`{"tiny":0.${'0'.repeat(323)}1}`).value).toEqual({
      tiny: `0.${'0'.repeat(323)}1`,
    });
  });

  it('parses 17-digit doubles as numbers, not strings', () => {
    expect(parseJsonText('{"v":0.33333333333333331,"w":[21.149999999999999]}').value).toEqual({
      v: 0.3333333333333333,
      w: [21.15],
    });
  });

  it('keeps __proto__ a plain key, as JSON.parse does', () => {
    const value = parseJsonText('{"__proto__": {"polluted": 123456789012345678901234567890}}')
      .value as object;
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('throws SyntaxError for text that is not JSON, and does not overflow on deep nesting', () => {
    expect(() => parseJsonText('{"a":')).toThrow(SyntaxError);
    const deep = `${'['.repeat(100_000)}1e999${']'.repeat(100_000)}`;
    expect(parseJsonText(deep).elementSources).toHaveLength(1);
  });
});
