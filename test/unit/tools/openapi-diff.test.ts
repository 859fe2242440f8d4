import { describe, expect, it } from 'vitest';
import { openApiDifferences } from '../../../tools/openapi-diff.js';

const base = () => ({
  openapi: '3.1.0',
  paths: {
    '/x': {
      get: {
        responses: {
          '200': {
            description: 'ok',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/X' } } },
          },
        },
      },
    },
  },
  components: {
    schemas: {
      X: {
        type: 'object',
        required: ['a', 'b'],
        properties: { a: { enum: ['p', 'q'] }, b: { type: ['string', 'number'], maxLength: 5 } },
      },
    },
  },
});
const inline = (schema: object) => {
  const doc = base();
  doc.paths['/x'].get.responses['200'].content['application/json'].schema = schema as never;
  return doc;
};
const x = base().components.schemas.X;

describe('openApiDifferences', () => {
  it('ignores representation: $ref vs inline, key and required order, type beside enum, anyOf of one-type branches', () => {
    const same = inline({
      properties: {
        b: { anyOf: [{ type: 'string', maxLength: 5 }, { type: 'number' }] },
        a: { type: 'string', enum: ['p', 'q'] },
      },
      required: ['b', 'a'],
      type: 'object',
      additionalProperties: true,
    });
    expect(openApiDifferences(base(), same)).toEqual([]);
  });

  it('keeps anyOf and oneOf apart when branches overlap, and never merges branches of one type (review of issue 14)', () => {
    const branches = [{ type: 'object' }, { type: 'object', required: ['a'] }];
    expect(openApiDifferences(inline({ oneOf: branches }), inline({ anyOf: branches }))).not.toEqual([]);
    const deprecated = [
      { type: 'object', required: ['metadata'] },
      { type: 'object', deprecated: true },
    ];
    expect(openApiDifferences(inline({ type: 'object' }), inline({ anyOf: deprecated }))).not.toEqual([]);
  });

  it('reports a changed constraint, description, or status', () => {
    expect(
      openApiDifferences(base(), inline({ ...x, properties: { ...x.properties, a: { enum: ['p'] } } })),
    ).toEqual([
      '#/paths/~1x/get/responses/200/content/application~1json/schema/properties/a/enum: ["p","q"] → ["p"]',
    ]);
    const described = base();
    described.paths['/x'].get.responses['200'].description = 'fine';
    expect(openApiDifferences(base(), described)).toEqual([
      '#/paths/~1x/get/responses/200/description: "ok" → "fine"',
    ]);
    const more = base();
    (more.paths['/x'].get.responses as Record<string, unknown>)['404'] = { description: 'gone' };
    expect(openApiDifferences(base(), more)).toEqual([
      '#/paths/~1x/get/responses/404: (absent) → {"description":"gone"}',
    ]);
  });
});
