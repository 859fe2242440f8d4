import type { z } from 'zod';
import { UnprocessableRequestError, ValidationError } from './errors.js';

/** The parts of an HTTP request the API handlers read (the library's HttpRequest satisfies it). */
export interface ApiRequest {
  params: Record<string, string | undefined>;
  query: URLSearchParams;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

export interface ApiResponse {
  status: number;
  jsonBody?: unknown;
  headers?: Record<string, string>;
}

/** Reads a JSON body: malformed JSON is 400; an empty body counts as `{}` where the route allows it. */
export async function readJson(request: ApiRequest, emptyAllowed: boolean): Promise<unknown> {
  const text = await request.text();
  if (text.trim() === '') {
    if (emptyAllowed) return {};
    throw new ValidationError('A JSON body is required.');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ValidationError('The body is not valid JSON.');
  }
}

/** Schema violations become 422 with one entry per violation (each unknown field named by its full path). */
export function parseRequest<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new UnprocessableRequestError(
    'The request does not match the API schema.',
    result.error.issues.flatMap((issue) => {
      const at = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => ({ path: [...at, key].join('.'), message: 'is not a known field' }));
      }
      return [{ path: at.join('.') || '(body)', message: issue.message }];
    }),
  );
}

/**
 * The query parameters as [name, value] pairs, without `code`: the function key when a caller sends it in the
 * query string (Azure Functions convention) is not a parameter of any route.
 */
export const queryParameters = (request: ApiRequest): [string, string][] =>
  [...request.query].filter(([key]) => key !== 'code');
