import { describe, expect, it } from 'vitest';
import { toProblemResponse } from '../../../src/http/problem.js';
import {
  DeviceNotFoundError,
  ConcurrentUpdateError,
  PreconditionFailedError,
  ServiceUnavailableError,
  ThrottledError,
  ValidationError,
} from '../../../src/shared/errors.js';

function bodyText(response: { body?: unknown }): string {
  expect(typeof response.body).toBe('string');
  return response.body as string;
}

const bodyOf = (response: { body?: unknown }) => JSON.parse(bodyText(response)) as Record<string, unknown>;

describe('toProblemResponse', () => {
  it('maps ValidationError to 400 with the per-field errors', () => {
    const errors = [{ path: 'deviceId', message: 'must not be empty' }];
    const response = toProblemResponse(
      new ValidationError('The request is invalid.', errors),
      '/api/devices/x',
    );
    expect(response.status).toBe(400);
    expect(response.headers).toEqual({ 'content-type': 'application/problem+json' });
    expect(bodyOf(response)).toEqual({
      type: 'urn:problem-type:validation-error',
      title: 'Bad Request',
      status: 400,
      detail: 'The request is invalid.',
      instance: '/api/devices/x',
      errors,
    });
  });

  it('leaves out an empty errors list', () => {
    expect(bodyOf(toProblemResponse(new ValidationError('bad')))).not.toHaveProperty('errors');
  });

  it('maps DeviceNotFoundError to 404', () => {
    const response = toProblemResponse(new DeviceNotFoundError('dev-9'));
    expect(response.status).toBe(404);
    expect(bodyOf(response)).toEqual({
      type: 'urn:problem-type:device-not-found',
      title: 'Not Found',
      status: 404,
      detail: "Device 'dev-9' was not found.",
    });
  });

  it('maps PreconditionFailedError to 412', () => {
    const response = toProblemResponse(new PreconditionFailedError('ETag mismatch'));
    expect(response.status).toBe(412);
    expect(bodyOf(response)).toMatchObject({ type: 'urn:problem-type:precondition-failed', status: 412 });
  });

  it('maps a throttled backing service to 503 with retry-after (its own hint, else a default)', () => {
    const response = toProblemResponse(new ThrottledError('Slow down', 7));
    expect(response.status).toBe(503);
    expect(response.headers).toMatchObject({ 'retry-after': '7' });
    expect(bodyOf(response)).toMatchObject({ type: 'urn:problem-type:throttled', status: 503 });

    expect(toProblemResponse(new ThrottledError('Slow down')).headers).toMatchObject({ 'retry-after': '5' });
    expect(toProblemResponse(new ThrottledError('Slow down', 0)).headers).toMatchObject({
      'retry-after': '0',
    });
  });

  it('maps an unavailable backing service to 503 with retry-after', () => {
    const response = toProblemResponse(new ServiceUnavailableError('Cosmos DB timed out'));
    expect(response.status).toBe(503);
    expect(response.headers).toMatchObject({ 'retry-after': '5' });
    expect(bodyOf(response)).toMatchObject({ type: 'urn:problem-type:service-unavailable', status: 503 });
  });

  it('maps a race we kept losing to 503 with retry-after 1, never 412 (issue 14)', () => {
    const response = toProblemResponse(new ConcurrentUpdateError("Device 'd1' kept changing"));
    expect(response.status).toBe(503);
    expect(response.headers).toMatchObject({ 'retry-after': '1' });
    expect(bodyOf(response)).toMatchObject({
      type: 'urn:problem-type:concurrent-update',
      title: 'Service Unavailable',
      status: 503,
    });
  });

  it('maps an unknown error to 500 without revealing its message', () => {
    const secret = 'connection string AccountKey=s3cr3t rejected by host db-internal-17';
    const response = toProblemResponse(new Error(secret), '/api/devices/x');
    expect(response.status).toBe(500);
    expect(response.headers).toEqual({ 'content-type': 'application/problem+json' });
    expect(bodyOf(response)).toEqual({
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      instance: '/api/devices/x',
    });
    expect(bodyText(response)).not.toContain('s3cr3t');
  });

  it('treats thrown non-errors as unknown', () => {
    for (const thrown of ['oops', 42, null, undefined, { status: 404, message: 'looks like a 404' }]) {
      const response = toProblemResponse(thrown);
      expect(response.status).toBe(500);
      expect(bodyText(response)).not.toContain('looks like');
    }
  });
});
