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
  ])('%s is faithful', (token) => {
    expect(isFaithfulNumber(token)).toBe(true);
  });
  it.each([
    '1e999',
    '-1e400',
    '1e-400',
    '123456789012345678901234567890',
    '9007199254740993',
    '0.12345678901234567890',
  ])('%s is not', (token) => {
    expect(isFaithfulNumber(token)).toBe(false);
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
