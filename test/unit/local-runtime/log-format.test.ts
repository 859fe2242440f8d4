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

  it('formats errors and thrown non-errors on one line', () => {
    expect(formatError(new TypeError('bad'))).toBe('TypeError: bad');
    expect(formatError(Object.create(null))).toBe('[Object: null prototype] {}');
  });
});
