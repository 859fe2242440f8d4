import type { Container, SqlQuerySpec } from '@azure/cosmos';
import { ValidationError } from '../../shared/errors.js';
import { isTokenRefusal, translateCosmosError } from './errors.js';

/** What a continuation token this API handed out looks like: printable ASCII (it travels as an HTTP header). */
const TOKEN_SHAPE = /^[\x20-\x7e]{1,16384}$/;

/** How many empty pages in a row one call reads on through before it answers with an empty page and a token. */
const MAX_EMPTY_READS = 10;

const invalidToken = () =>
  new ValidationError('Invalid continuation token.', [
    { path: 'continuationToken', message: 'is not a token this API returned' },
  ]);

/**
 * One page of a Cosmos DB query, for every paged list of the API. Throttling and outages are translated as in
 * every adapter (translateCosmosError: 503 with Retry-After), whether or not a token was given. Otherwise a
 * continuation token that Cosmos DB did not issue is the caller's mistake (400), whether the service refuses it
 * or the SDK does before sending (isTokenRefusal). Any other failure (a credential that cannot get a token,
 * say) is passed on.
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
    const iterator = container.items.query<T>(query, {
      maxItemCount: page.top,
      // Without it, @azure/cosmos 4.9 gives a cross-partition ORDER BY (every list here, in Azure) no
      // continuation token after the first page, and refuses any token it is given.
      enableQueryControl: true,
      ...(token ? { continuationToken: token } : {}),
    });
    let result = await iterator.fetchNext();
    // With query control a page can come back empty while partitions are still being read: read on, bounded.
    for (let i = 0; i < MAX_EMPTY_READS && result.resources.length === 0 && iterator.hasMoreResults(); i++) {
      result = await iterator.fetchNext();
    }
    return {
      items: result.resources,
      ...(result.continuationToken ? { continuationToken: result.continuationToken } : {}),
    };
  } catch (error) {
    const translated = translateCosmosError(error);
    if (translated !== error) throw translated;
    if (token && isTokenRefusal(error)) throw invalidToken();
    throw error;
  }
}
