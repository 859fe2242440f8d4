import type { Container, SqlQuerySpec } from '@azure/cosmos';
import { ValidationError } from '../../shared/errors.js';
import { cosmosStatus } from './cosmos-client.js';

/** What a continuation token this API handed out looks like: printable ASCII (it travels as an HTTP header). */
const TOKEN_SHAPE = /^[\x20-\x7e]{1,16384}$/;

const invalidToken = () =>
  new ValidationError('Invalid continuation token.', [
    { path: 'continuationToken', message: 'is not a token this API returned' },
  ]);

/**
 * One page of a Cosmos DB query, for every paged list of the API. A continuation token that Cosmos DB did not
 * issue is the caller's mistake (400), whether the SDK refuses it before sending (it parses ORDER BY tokens and
 * puts them in a header) or the service does (400); any other failure is passed on to the adapter's own
 * translation.
 */
// The caller names the document type, as the SDK's own `items.query<T>` does.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
export async function fetchPage<T>(
  container: Container,
  query: SqlQuerySpec | string,
  page: { top: number; continuationToken?: string | undefined },
): Promise<{ items: T[]; continuationToken?: string }> {
  const token = page.continuationToken;
  if (token !== undefined && !TOKEN_SHAPE.test(token)) throw invalidToken();
  try {
    const result = await container.items
      .query<T>(query, { maxItemCount: page.top, ...(token ? { continuationToken: token } : {}) })
      .fetchNext();
    return {
      items: result.resources,
      ...(result.continuationToken ? { continuationToken: result.continuationToken } : {}),
    };
  } catch (error) {
    // The SDK itself choking on the token throws a SyntaxError or TypeError (network failures are RestErrors).
    const sdkRefused = error instanceof SyntaxError || error instanceof TypeError;
    if (token && (cosmosStatus(error) === 400 || sdkRefused)) throw invalidToken();
    throw error;
  }
}
