/**
 * The one SDK → domain translation per service (src/infra/<service>/errors.ts), fed the errors each SDK really
 * throws: @azure/cosmos's ErrorResponse, core-rest-pipeline's RestError (Blob and Table storage), azure-iothub's
 * own RestApiClient.translateError, the durable-functions client's messages, Slack's webhook answers.
 */
import { ErrorResponse } from '@azure/cosmos';
import { RestError } from '@azure/data-tables';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import * as cosmos from '../../../src/infra/cosmos/errors.js';
import * as durable from '../../../src/infra/durable/errors.js';
import * as iothub from '../../../src/infra/iothub/errors.js';
import * as slack from '../../../src/infra/slack/errors.js';
import * as storage from '../../../src/infra/storage/errors.js';
import {
  ConcurrentUpdateError,
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  ServiceUnavailableError,
  ThrottledError,
  TooManyJobsError,
  UnprocessableRequestError,
} from '../../../src/shared/errors.js';

const cosmosError = (code: number, extra: Partial<ErrorResponse> = {}) =>
  Object.assign(new ErrorResponse(`cosmos ${code}`), { code }, extra);
const networkError = (code: string) => Object.assign(new Error(code), { code });

describe('Cosmos DB (src/infra/cosmos/errors.ts)', () => {
  it('throttling is ThrottledError with x-ms-retry-after-ms in whole seconds', () => {
    const throttled = cosmos.translateCosmosError(cosmosError(429, { retryAfterInMs: 1500 }));
    expect(throttled).toBeInstanceOf(ThrottledError);
    expect((throttled as ThrottledError).retryAfterSeconds).toBe(2);
  });

  it.each([
    ['503', cosmosError(503)],
    ['408', cosmosError(408)],
    ['a refused connection', networkError('ECONNREFUSED')],
    ['a reset connection', networkError('ECONNRESET')],
  ])('%s is ServiceUnavailableError (not throttling)', (_, error) => {
    const translated = cosmos.translateCosmosError(error);
    expect(translated).toBeInstanceOf(ServiceUnavailableError);
    expect(translated).not.toBeInstanceOf(ThrottledError);
  });

  it('412 is a lost race (ConcurrentUpdateError) naming the document; other answers pass through', () => {
    const race = cosmos.translateCosmosError(cosmosError(412), "Job 'j1'");
    expect(race).toBeInstanceOf(ConcurrentUpdateError);
    expect((race as Error).message).toContain("Job 'j1'");
    const notFound = cosmosError(404);
    expect(cosmos.translateCosmosError(notFound)).toBe(notFound);
  });

  it('says what an answer means: missing, taken, changed, refused for good, a refused continuation token', () => {
    expect(cosmos.isNotFound(cosmosError(404))).toBe(true);
    expect(cosmos.isConflict(cosmosError(409))).toBe(true);
    expect(cosmos.isPreconditionFailed(cosmosError(412))).toBe(true);
    for (const status of [400, 413, 414]) expect(cosmos.isRefused(cosmosError(status))).toBe(true);
    expect(cosmos.isRefused(new URIError('bad id'))).toBe(true);
    expect(cosmos.isRefused(cosmosError(429))).toBe(false);
    expect(cosmos.isNotFound(cosmosError(409))).toBe(false);
    expect(cosmos.isTokenRefusal(new Error('Failed to parse continuation token'))).toBe(true);
    expect(cosmos.isTokenRefusal(new Error('no credential'))).toBe(false);
  });
});

describe('Storage, Blob and Table (src/infra/storage/errors.ts)', () => {
  const rest = (statusCode: number, code?: string) =>
    new RestError(`storage ${statusCode}`, { statusCode, ...(code ? { code } : {}) });

  it('429 is ThrottledError; 503, 408, 500 OperationTimedOut and network failures are ServiceUnavailableError', () => {
    expect(storage.translateTableError(rest(429))).toBeInstanceOf(ThrottledError);
    for (const error of [
      rest(503, 'ServerBusy'),
      rest(408),
      rest(500, 'OperationTimedOut'),
      networkError('ETIMEDOUT'),
      new RestError('socket hang up', { code: 'REQUEST_SEND_ERROR' }),
    ]) {
      const translated = storage.translateBlobError(error);
      expect(translated).toBeInstanceOf(ServiceUnavailableError);
      expect((translated as Error).message).toMatch(/^Blob storage is unavailable/);
    }
  });

  it('412 is a lost race naming the entity; 404, 409 and 500 of another kind pass through', () => {
    const race = storage.translateTableError(rest(412), "The twin of 'd1'");
    expect(race).toBeInstanceOf(ConcurrentUpdateError);
    expect((race as Error).message).toContain("The twin of 'd1'");
    for (const error of [rest(404), rest(409), rest(500, 'InternalError')]) {
      expect(storage.translateTableError(error)).toBe(error);
    }
  });

  it('says what an answer means: missing, taken, changed', () => {
    expect(storage.isNotFound(rest(404))).toBe(true);
    expect(storage.isConflict(rest(409))).toBe(true);
    expect(storage.isPreconditionFailed(rest(412))).toBe(true);
    expect(storage.isNotFound(rest(412))).toBe(false);
    expect(storage.isNotFound(new Error('no status'))).toBe(false);
  });
});

describe('IoT Hub (src/infra/iothub/errors.ts)', () => {
  const require = createRequire(import.meta.url);
  const { RestApiClient } = require('azure-iothub/dist/common-http/rest_api_client.js') as {
    RestApiClient: { translateError(body: string, response: object): Error };
  };
  /** An error as azure-iothub builds it from IoT Hub's answer. */
  const hubError = (statusCode: number, code = 'Error', headers: Record<string, string> = {}) =>
    RestApiClient.translateError(JSON.stringify({ Message: `ErrorCode:${code};something happened` }), {
      statusCode,
      headers,
    });
  const subject = { deviceId: 'd1' };

  it.each([
    [400, UnprocessableRequestError],
    [404, DeviceNotFoundError],
    [409, DeviceAlreadyExistsError],
    [412, ConcurrentUpdateError],
    [429, ThrottledError],
    [500, ServiceUnavailableError],
    [503, ServiceUnavailableError],
  ])('REST %i → %o', (status, expected) => {
    expect(iothub.translateIotHubError(hubError(status), subject)).toBeInstanceOf(expected);
  });

  it("keeps IoT Hub's Retry-After; a network failure is ServiceUnavailableError; 401 passes through", () => {
    const throttled = iothub.translateIotHubError(
      hubError(429, 'ThrottlingException', { 'retry-after': '7' }),
      subject,
    );
    expect((throttled as ThrottledError).retryAfterSeconds).toBe(7);
    expect(iothub.translateIotHubError(networkError('ECONNRESET'), subject)).toBeInstanceOf(
      ServiceUnavailableError,
    );
    const unauthorized = hubError(401);
    expect(iothub.translateIotHubError(unauthorized, subject)).toBe(unauthorized);
  });

  it('translates bulk per-device errors by their numeric code, else by name; never a plain Error', () => {
    const race = {
      deviceId: 'd1',
      errorCode: { name: 'PreconditionFailed', value: 412002 },
      errorStatus: 'etag',
    };
    expect(iothub.translateBulkDeviceError(race, subject)).toBeInstanceOf(ConcurrentUpdateError);
    expect(iothub.translateBulkDeviceError({ errorCode: 'PreconditionFailed' }, subject)).toBeInstanceOf(
      ConcurrentUpdateError,
    );
    expect(iothub.translateBulkDeviceError({ errorCode: 'DeviceNotFound' }, subject)).toBeInstanceOf(
      DeviceNotFoundError,
    );
    expect(
      iothub.translateBulkDeviceError(
        { errorCode: { name: 'ThrottleBacklogLimitExceeded', value: 429001 } },
        subject,
      ),
    ).toBeInstanceOf(ThrottledError);
    const unknown = iothub.translateBulkDeviceError(
      { errorCode: 'SomethingNew', errorStatus: 'why' },
      subject,
    );
    expect(unknown).toBeInstanceOf(ServiceUnavailableError);
    // A 4xx code this code does not know is a refusal, not an outage to wait out (review of issue 14).
    for (const value of [403002, 401002]) {
      const refused = iothub.translateBulkDeviceError({ errorCode: { name: 'X', value } }, subject);
      expect(refused).toBeInstanceOf(UnprocessableRequestError);
      expect(refused).not.toBeInstanceOf(ServiceUnavailableError);
    }
    expect(iothub.bulkDeviceFailure({ errorCode: 'DeviceAlreadyExists' }).error).toBe('already-exists');
  });

  it('job creation: too many active jobs is TooManyJobsError, plain throttling ThrottledError, 400 about the job', () => {
    expect(
      iothub.translateJobError(hubError(429, 'ThrottlingMaxActiveJobCountExceeded'), 'start'),
    ).toBeInstanceOf(TooManyJobsError);
    // Reading a job (get, cancel, device results) cannot meet the active-jobs limit (review of issue 14).
    expect(iothub.translateJobError(hubError(429, 'ThrottlingMaxActiveJobCountExceeded'))).toBeInstanceOf(
      ThrottledError,
    );
    expect(iothub.translateJobError(hubError(429, 'ThrottlingException'))).toBeInstanceOf(ThrottledError);
    const invalid = iothub.translateJobError(hubError(400));
    expect(invalid).toBeInstanceOf(UnprocessableRequestError);
    expect((invalid as UnprocessableRequestError).errors[0]?.path).toBe('(job)');
    const missing = hubError(404);
    expect(iothub.translateJobError(missing)).toBe(missing); // not a device: the caller handles it
  });
});

describe('Durable Functions client (src/infra/durable/errors.ts)', () => {
  const unexpected = (status: number) =>
    new Error(`The operation failed with an unexpected status code: ${status}. Details: {}`);

  it('429 is ThrottledError; 503 and network failures are ServiceUnavailableError; others pass through', () => {
    expect(durable.translateDurableError(unexpected(429))).toBeInstanceOf(ThrottledError);
    expect(durable.translateDurableError(unexpected(503))).toBeInstanceOf(ServiceUnavailableError);
    expect(durable.translateDurableError(networkError('ECONNREFUSED'))).toBeInstanceOf(
      ServiceUnavailableError,
    );
    const bad = unexpected(400);
    expect(durable.translateDurableError(bad)).toBe(bad);
  });

  it('recognises the answer for an unknown instance', () => {
    const notFound = new Error(
      'DurableClient error: Durable Functions extension replied with HTTP 404 response. This usually means …',
    );
    expect(durable.isUnknownInstance(notFound)).toBe(true);
    expect(durable.isUnknownInstance(unexpected(500))).toBe(false);
  });
});

describe('Slack webhook (src/infra/slack/errors.ts)', () => {
  it('2xx is sent; a channel or webhook refusal refuses every message; a content refusal this one', () => {
    expect(slack.slackAnswer(200, 'ok', undefined)).toEqual({ outcome: 'sent' });
    expect(slack.slackAnswer(404, 'channel_not_found', undefined)).toMatchObject({
      outcome: 'refused',
      scope: 'channel',
    });
    expect(slack.slackAnswer(410, '', undefined)).toMatchObject({ outcome: 'refused', scope: 'channel' });
    expect(slack.slackAnswer(400, 'invalid_blocks', undefined)).toMatchObject({
      outcome: 'refused',
      scope: 'message',
    });
  });

  it('429, 408 and 5xx are transient failures with the (capped) Retry-After; no answer is one too', () => {
    expect(slack.retryAfterMs('30', 429, 10_000)).toBe(10_000);
    expect(slack.retryAfterMs(null, 429, 10_000)).toBe(1000);
    expect(slack.retryAfterMs(null, 503, 10_000)).toBeUndefined();
    expect(slack.slackAnswer(429, 'rate_limited', 1000)).toEqual({
      outcome: 'failed',
      reason: 'Slack answered 429: rate_limited',
      retryAfterMs: 1000,
    });
    expect(slack.slackAnswer(503, '', undefined).outcome).toBe('failed');
    expect(slack.slackAnswer(408, '', undefined).outcome).toBe('failed');
    const timeout = Object.assign(new Error('t'), { name: 'TimeoutError' });
    expect(slack.unreachable(timeout)).toEqual({ outcome: 'failed', reason: 'Slack unreachable (timeout)' });
  });
});
