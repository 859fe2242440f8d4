import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { authorized, generateFunctionKeys } from '../../../tools/local-runtime/function-keys.js';

const KEYS = { functionKey: 'fn-key', masterKey: 'master-key' };
const request = (headers: Record<string, string> = {}) => ({ headers }) as unknown as IncomingMessage;
const url = (query = '') => new URL(`http://localhost/api/x${query}`);

describe('function keys, as the host checks them', () => {
  it('anonymous needs no key; function takes the function or master key', () => {
    expect(authorized('anonymous', request(), url(), KEYS)).toBe(true);
    expect(authorized('function', request(), url(), KEYS)).toBe(false);
    expect(authorized('function', request({ 'x-functions-key': 'fn-key' }), url(), KEYS)).toBe(true);
    expect(authorized('function', request(), url('?code=master-key'), KEYS)).toBe(true);
  });

  it('admin takes only the master key', () => {
    expect(authorized('admin', request({ 'x-functions-key': 'fn-key' }), url(), KEYS)).toBe(false);
    expect(authorized('admin', request(), url('?code=master-key'), KEYS)).toBe(true);
  });

  it("a binding without authLevel is 'function' (the host's default)", () => {
    expect(authorized(undefined, request(), url(), KEYS)).toBe(false);
    expect(authorized(undefined, request(), url('?code=fn-key'), KEYS)).toBe(true);
  });

  it('the header wins over ?code=, and without keys nothing is checked', () => {
    expect(authorized('function', request({ 'x-functions-key': 'wrong' }), url('?code=fn-key'), KEYS)).toBe(
      false,
    );
    expect(authorized('admin', request(), url(), undefined)).toBe(true);
  });

  it('generates distinct random keys per run', () => {
    const a = generateFunctionKeys();
    const b = generateFunctionKeys();
    expect(a.functionKey).toMatch(/^[A-Za-z0-9_-]{40}$/);
    expect(new Set([a.functionKey, a.masterKey, b.functionKey, b.masterKey]).size).toBe(4);
  });
});
