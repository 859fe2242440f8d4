import { z } from 'zod';
import {
  ifMatchVersion,
  parseRequest as parse,
  pathParam,
  queryParameters,
  readJson as readBody,
  toEntityTag,
  type ApiRequest,
  type ApiResponse,
} from '../shared/api-request.js';
import { UnprocessableRequestError } from '../shared/errors.js';
import { keyProblems, type SymmetricKeys } from './keys.js';
import { METADATA_DESCRIPTION, RESERVED_METADATA_KEYS, metadataSchema } from './metadata.js';
import type { ProvisioningService } from './provisioning-service.js';
import { QUERYABLE_FIELD, publicRecord, type VersionedDeviceRecord } from './catalog.js';

const keysSchema = z.strictObject({
  primaryKey: z.string().describe('base64 of 16-64 bytes'),
  secondaryKey: z.string().describe('base64 of 16-64 bytes'),
});
export const registerSchema = z.strictObject({
  id: z.string().optional(),
  keys: keysSchema.optional(),
  metadata: metadataSchema.optional().describe(METADATA_DESCRIPTION),
});
export const statusChangeSchema = z
  .strictObject({ metadata: metadataSchema.optional().describe(METADATA_DESCRIPTION) })
  .meta({ id: 'StatusChange' });
export const updateSchema = z.strictObject({ metadata: metadataSchema.describe(METADATA_DESCRIPTION) });
export const resetSchema = z.strictObject({ keys: keysSchema.optional() });
export const twinPatchSchema = z.strictObject({ desired: metadataSchema });
export const listSchema = z.strictObject({
  status: z.enum(['enabled', 'disabled']).optional(),
  top: z.coerce.number().int().min(1).max(1000).default(100),
  continuationToken: z.string().min(1).optional(),
});

/** A device as the API shows it: never keys, and the ETag in a header rather than the body. */
function deviceResponse(record: VersionedDeviceRecord, status = 200): ApiResponse {
  return { status, jsonBody: publicRecord(record), headers: { etag: toEntityTag(record.etag) } };
}

const id = (request: ApiRequest) => pathParam(request, 'id');

/** Reads a route's JSON body within the API's limits; `emptyAllowed`: no body reads as `{}`. */
type ReadJson = (request: ApiRequest, emptyAllowed: boolean) => Promise<unknown>;

/** Handler factories for the provisioning API (seed 002 §3.4); each is registered by the composition root. */
export function makeProvisioningHandlers(
  service: ProvisioningService,
  /** Largest JSON body accepted, bytes (Http__MaxBodyBytes). */
  limits: { maxBodyBytes?: number } = {},
) {
  const readJson: ReadJson = (request, emptyAllowed) =>
    readBody(request, emptyAllowed, { maxBytes: limits.maxBodyBytes });
  return {
    ...lifecycleHandlers(service, readJson),
    getDevice: async (request: ApiRequest): Promise<ApiResponse> =>
      deviceResponse(await service.get(id(request))),
    listDevices: async (request: ApiRequest): Promise<ApiResponse> => {
      const { plain, metadata } = listParameters(request);
      const query = parse(listSchema, plain);
      const page = await service.list({
        top: query.top,
        ...(query.status ? { status: query.status } : {}),
        ...(query.continuationToken ? { continuationToken: query.continuationToken } : {}),
        ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
      });
      return {
        status: 200,
        jsonBody: { items: page.items.map(publicRecord), continuationToken: page.continuationToken ?? null },
      };
    },
    ...updateHandlers(service, readJson),
  };
}

/** The client's If-Match as the one version the service compares (undefined: none or `*`; RFC 9110 §13.1.1). */
const clientVersion = (service: ProvisioningService, request: ApiRequest) =>
  ifMatchVersion(request, async () => (await service.get(id(request))).etag);

/** Register, activate, deactivate, reset credentials, unregister. */
function lifecycleHandlers(service: ProvisioningService, readJson: ReadJson) {
  return {
    registerDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(registerSchema, await readJson(request, false));
      checkKeys(body.keys);
      const result = await service.register(body);
      const device = publicRecord(result.record);
      return {
        status: 201,
        headers: {
          etag: toEntityTag(result.record.etag),
          location: `/api/devices/${encodeURIComponent(result.id)}`,
        },
        jsonBody: { ...device, keys: result.keys, connectionString: result.connectionString },
      };
    },

    activateDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(statusChangeSchema, await readJson(request, true));
      return deviceResponse(
        await service.setStatus(id(request), 'enabled', body.metadata, await clientVersion(service, request)),
      );
    },

    deactivateDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(statusChangeSchema, await readJson(request, true));
      return deviceResponse(
        await service.setStatus(
          id(request),
          'disabled',
          body.metadata,
          await clientVersion(service, request),
        ),
      );
    },

    resetCredentials: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(resetSchema, await readJson(request, true));
      checkKeys(body.keys);
      return { status: 200, jsonBody: await service.resetCredentials(id(request), body.keys) };
    },

    unregisterDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const purge = request.query.get('purgeState');
      if (purge !== null && purge !== 'true' && purge !== 'false') {
        throw new UnprocessableRequestError('Invalid query.', [
          { path: 'purgeState', message: 'must be true or false' },
        ]);
      }
      await service.unregister(id(request), purge === 'true', await clientVersion(service, request));
      return { status: 204 };
    },
  };
}

/** The metadata PATCH and the twin: merge patches, guarded by If-Match (RFC 9110 §13.1.1) when one is sent. */
function updateHandlers(service: ProvisioningService, readJson: ReadJson) {
  return {
    updateDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const { patch, bare } = updateBody(await readJson(request, false));
      const deviceId = id(request);
      const ifMatch = await ifMatchVersion(request, async () => (await service.get(deviceId)).etag);
      const response = deviceResponse(await service.update(deviceId, patch, ifMatch));
      return bare ? { ...response, headers: { ...response.headers, ...BARE_PATCH_DEPRECATION } } : response;
    },

    getDeviceTwin: async (request: ApiRequest): Promise<ApiResponse> => {
      const { etag, ...twin } = await service.getTwin(id(request));
      return { status: 200, jsonBody: twin, headers: { etag: toEntityTag(etag) } };
    },

    updateDeviceTwin: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(twinPatchSchema, await readJson(request, false));
      const deviceId = id(request);
      const ifMatch = await ifMatchVersion(request, async () => (await service.getTwin(deviceId)).etag);
      const { etag, ...twin } = await service.patchTwin(deviceId, body.desired, ifMatch);
      return { status: 200, jsonBody: twin, headers: { etag: toEntityTag(etag) } };
    },
  };
}

/**
 * The bare-metadata PATCH body (`{ "site": "x" }` instead of `{ "metadata": { "site": "x" } }`) is deprecated
 * since 2026-12-02 and stays accepted until its sunset, 2027-06-01 (README, "Provisioning API"). Answers to it
 * carry `Deprecation` (RFC 9745: `@` Unix seconds), `Sunset` (RFC 8594) and a `Link` to the API description.
 */
const BARE_PATCH_DEPRECATION = {
  deprecation: `@${Date.UTC(2026, 11, 2) / 1000}`,
  sunset: new Date(Date.UTC(2027, 5, 1)).toUTCString(),
  link: '</api/openapi.json>; rel="deprecation"; type="application/json"',
};

/**
 * A PATCH body: `{ "metadata": {…} }` (any other top-level key is 422), or, during the deprecation window, bare
 * metadata. A body with a top-level `metadata` key is always the first form, so it never becomes
 * `metadata.metadata`. `{}` is read as an empty merge patch, deprecated in neither form.
 */
export function updateBody(body: unknown): { patch: Record<string, unknown>; bare: boolean } {
  if (typeof body === 'object' && body !== null && Object.hasOwn(body, 'metadata')) {
    return { patch: parse(updateSchema, body).metadata, bare: false };
  }
  const patch = parse(metadataSchema, body);
  return { patch, bare: Object.keys(patch).length > 0 };
}

/** Caller-supplied keys break the API schema (422, like any schema violation) unless IoT Hub would take them. */
function checkKeys(keys: SymmetricKeys | undefined): void {
  const problems = keys ? keyProblems(keys) : [];
  if (problems.length > 0) throw new UnprocessableRequestError('Invalid device keys.', problems);
}

/**
 * The list route's query: plain parameters, and `metadata.<field>` filters (typed like JSON scalars). A filter
 * that cannot be applied as written is refused (422), never dropped (dropping it matches everything).
 */
function listParameters(request: ApiRequest): {
  plain: Record<string, string>;
  metadata: Record<string, string | number | boolean>;
} {
  const plain: Record<string, string> = {};
  // No prototype: a field named like an Object member is data, never a lookup into Object.prototype.
  const metadata = Object.create(null) as Record<string, string | number | boolean>;
  const badFields: { path: string; message: string }[] = [];
  for (const [key, value] of queryParameters(request)) {
    if (!key.startsWith('metadata.')) {
      plain[key] = value;
      continue;
    }
    const field = key.slice('metadata.'.length);
    if (RESERVED_METADATA_KEYS.has(field))
      badFields.push({ path: key, message: 'is a reserved name; metadata fields cannot be named so' });
    else if (field in metadata)
      badFields.push({ path: key, message: 'is given twice; a field can only equal one value' });
    else if (QUERYABLE_FIELD.test(field)) metadata[field] = typedValue(value);
    else
      badFields.push({
        path: key,
        message: 'metadata filter names must be identifiers (letters, digits, _)',
      });
  }
  if (badFields.length > 0) throw new UnprocessableRequestError('Invalid query.', badFields);
  return { plain, metadata };
}

/** Query values are strings; metadata filters also match numbers and booleans written the same way. */
function typedValue(value: string): string | number | boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
}
