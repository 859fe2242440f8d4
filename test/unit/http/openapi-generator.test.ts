import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  buildOpenApiDocument,
  type ApiRoute,
  type DocumentHead,
} from '../../../src/http/openapi-generator.js';

const head: DocumentHead = {
  openapi: '3.1.0',
  info: { title: 't', version: '1', description: 'd' },
  servers: [{ url: '/api' }],
  security: [{ key: [] }],
  tags: [{ name: 'T', description: 'things' }],
  securitySchemes: { key: { type: 'apiKey', in: 'header', name: 'k' } },
};
const problem = z.looseObject({ title: z.string() }).meta({ id: 'TestProblem' });
const thing = z
  .strictObject({ at: z.iso.datetime({ offset: true }), n: z.number().int() })
  .meta({ id: 'Thing' });
const getThing: ApiRoute = {
  operationId: 'getThing',
  method: 'get',
  path: '/things/{id}',
  tags: ['T'],
  pathParameters: [{ name: 'id', in: 'path', schema: z.string() }],
  query: z.strictObject({
    top: z.coerce.number().int().min(1).default(5).describe('How many'),
    q: z.string(),
  }),
  responses: { 200: { description: 'The thing', schema: thing, headers: { ETag: { schema: z.string() } } } },
  problems: [400],
  problemNotes: { 404: 'Unknown thing' },
};

describe('buildOpenApiDocument', () => {
  const document = buildOpenApiDocument(head, [getThing], problem);
  const item = document.paths['/things/{id}'] ?? {};

  it('puts path parameters on the path, and one query parameter per property of the query schema', () => {
    expect(item.parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }]);
    expect(item.get).toMatchObject({
      operationId: 'getThing',
      tags: ['T'],
      parameters: [
        {
          name: 'top',
          in: 'query',
          description: 'How many',
          schema: { type: 'integer', minimum: 1, default: 5 },
        },
        { name: 'q', in: 'query', required: true, schema: { type: 'string' } },
      ],
    });
  });

  it('names a schema with .meta({ id }) as a component, without the zod-only detail', () => {
    expect(item.get).toMatchObject({
      responses: {
        200: {
          description: 'The thing',
          headers: { ETag: { schema: { type: 'string' } } },
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } },
        },
      },
    });
    // No date-time regex (format is the contract), no safe-integer bounds.
    expect(document.components.schemas.Thing).toEqual({
      type: 'object',
      properties: { at: { type: 'string', format: 'date-time' }, n: { type: 'integer' } },
      required: ['at', 'n'],
      additionalProperties: false,
    });
  });

  it('answers the problem statuses with the problem schema, in the route’s words where it has them', () => {
    const problemContent = {
      'application/problem+json': { schema: { $ref: '#/components/schemas/TestProblem' } },
    };
    expect(item.get).toMatchObject({
      responses: {
        400: { description: expect.stringContaining('Malformed JSON') as unknown, content: problemContent },
        404: { description: 'Unknown thing', content: problemContent },
      },
    });
    expect(document.components.schemas.TestProblem).toMatchObject({ properties: { title: {} } });
  });

  it('refuses a table that cannot be one document', () => {
    const other = z.strictObject({ x: z.string() }).meta({ id: 'Thing' });
    expect(() =>
      buildOpenApiDocument(
        head,
        [
          getThing,
          {
            ...getThing,
            operationId: 'other',
            method: 'post',
            responses: { 200: { description: 'x', schema: other } },
          },
        ],
        problem,
      ),
    ).toThrow('Two different schemas are named Thing.');
    expect(() =>
      buildOpenApiDocument(head, [getThing, { ...getThing, operationId: 'again' }], problem),
    ).toThrow('get /things/{id} is in the table twice.');
    expect(() =>
      buildOpenApiDocument(
        head,
        [
          getThing,
          { ...getThing, method: 'delete', pathParameters: [{ name: 'id', in: 'path', schema: z.number() }] },
        ],
        problem,
      ),
    ).toThrow('differ between operations');
  });
});
