import { describe, expect, it } from 'vitest';
import { getOpenApiDocument, openApiDocument } from '../../../src/http/openapi.js';
import { operations, responseProblems, validateDocument } from '../../support/openapi.js';

describe('openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await validateDocument();
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
  });

  it('is what GET /api/openapi.json serves', async () => {
    expect(await getOpenApiDocument()).toEqual({ status: 200, jsonBody: openApiDocument });
  });

  it('has a unique operationId per operation', () => {
    // Counted from the document, so that a route added elsewhere does not need this number changed.
    const all = Object.values(openApiDocument.paths).flatMap((item) =>
      Object.entries(item).filter(([method]) => method !== 'parameters'),
    );
    expect(all.length).toBeGreaterThanOrEqual(27);
    expect(operations().size).toBe(all.length);
  });

  it('catches responses that break it (the response validator is not a no-op)', () => {
    expect(
      responseProblems('getDevice', 200, { id: 'x', status: 'enabled', metadata: {}, createdAt: 'now' }),
    ).not.toEqual([]);
    expect(
      responseProblems('getDevice', 200, {
        id: 'x',
        status: 'enabled',
        metadata: {},
        createdAt: '2026-11-23T10:00:00.000Z',
        updatedAt: '2026-11-23T10:00:00.000Z',
        keys: { primaryKey: 'leak', secondaryKey: 'leak' },
      }),
    ).not.toEqual([]);
    expect(responseProblems('getDevice', 418, {})).toEqual(['getDevice does not declare status 418']);
  });
});
