import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { formatError, formatLogArgs } from '../../../tools/local-runtime/log-format.js';

describe('formatLogArgs (every log handler of the embedded runtime)', () => {
  it('renders values that String() cannot', () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { 'stream-id': 'audit' });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const text = formatLogArgs(['msg', bare, 10n, cycle, Symbol('x'), undefined, null]);
    expect(text).toBe(
      "msg [Object: null prototype] { 'stream-id': 'audit' } 10n <ref *1> { self: [Circular *1] } Symbol(x) undefined null",
    );
  });

  it('never throws, whatever a value does when inspected', () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const hostile = {
      [inspect.custom]: () => {
        throw new Error('boom');
      },
    };
    const traps = new Proxy(
      {},
      {
        get: () => {
          throw new Error('trap');
        },
        ownKeys: () => {
          throw new Error('trap');
        },
      },
    );
    expect(() => formatLogArgs([proxy, hostile, traps])).not.toThrow();
    expect(formatLogArgs([hostile])).toBe('[object Object]');
  });

  it('leaves format specifiers in strings alone and keeps lines bounded', () => {
    expect(formatLogArgs(['%s %d', 'a'])).toBe('%s %d a');
    expect(formatLogArgs([{ big: 'x'.repeat(100_000) }]).length).toBeLessThan(1_200);
  });

  it('bounds strings and escapes line breaks, so a device string cannot forge a log line', () => {
    const forged = 'ok\r\n[ingestTelemetry] partition 0: 0 messages\u2028\u001b[31mred';
    const text = formatLogArgs(['value:', forged]);
    for (const c of ['\r', '\n', '\u2028', '\u001b']) expect(text).not.toContain(c);
    expect(text).toBe('value: ok\\r\\n[ingestTelemetry] partition 0: 0 messages\\u2028\\u001b[31mred');
    const long = formatLogArgs(['y'.repeat(100_000)]);
    expect(long.length).toBeLessThan(1_100);
    expect(long).toMatch(/^y{1000}… \(99000 more characters\)$/);
    expect(formatLogArgs(['tab\tstays'])).toBe('tab\tstays');
  });

  it('keeps every value on one line: errors, nested strings, custom inspect output', () => {
    const custom = { [inspect.custom]: () => 'first\nFORGED line' };
    const text = formatLogArgs(['a', new Error('x\nFORGED line'), { note: 'n\u2028FORGED' }, custom]);
    for (const c of ['\n', '\r', '\u2028']) expect(text).not.toContain(c);
    expect(text).toContain('Error: x\\nFORGED line');
    expect(text).not.toMatch(/\bat /); // no stack trace
  });

  it('formats errors and thrown non-errors on one line', () => {
    expect(formatError(new Error('a\nforged line'))).toBe('Error: a\\nforged line');
    expect(formatError(new Error('z'.repeat(50_000))).length).toBeLessThan(1_100);
    expect(formatError(new TypeError('bad'))).toBe('TypeError: bad');
    expect(formatError(Object.create(null))).toBe('[Object: null prototype] {}');
  });
});
