import { z } from 'zod';
import {
  parseRequest as parse,
  pathParam,
  queryParameters,
  readJson as readBody,
  type ApiRequest,
  type ApiResponse,
} from '../shared/api-request.js';
import { UnprocessableRequestError } from '../shared/errors.js';
import { METADATA_DESCRIPTION, RESERVED_METADATA_KEYS, metadataSchema } from './metadata.js';
import type { ProvisioningService } from './provisioning-service.js';
import { QUERYABLE_FIELD, publicRecord, type VersionedDeviceRecord } from './registry.js';

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
export const resetSchema = z.strictObject({ keys: keysSchema.optional() });
export const twinPatchSchema = z.strictObject({ desired: metadataSchema });
export const listSchema = z.strictObject({
  status: z.enum(['enabled', 'disabled']).optional(),
  top: z.coerce.number().int().min(1).max(1000).default(100),
  continuationToken: z.string().min(1).optional(),
});

/** A device as the API shows it: never keys, and the ETag in a header rather than the body. */
function deviceResponse(record: VersionedDeviceRecord, status = 200): ApiResponse {
  return { status, jsonBody: publicRecord(record), headers: { etag: record.etag } };
}

const id = (request: ApiRequest) => pathParam(request, 'id');

/** Handler factories for the provisioning API (seed 002 §3.4); each is registered by the composition root. */
export function makeProvisioningHandlers(
  service: ProvisioningService,
  /** Largest JSON body accepted, bytes (Http__MaxBodyBytes). */
  limits: { maxBodyBytes?: number } = {},
) {
  const readJson = (request: ApiRequest, emptyAllowed: boolean) =>
    readBody(request, emptyAllowed, { maxBytes: limits.maxBodyBytes });
  return {
    registerDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(registerSchema, await readJson(request, false));
      const result = await service.register(body);
      const device = publicRecord(result.record);
      return {
        status: 201,
        headers: { etag: result.record.etag, location: `/api/devices/${encodeURIComponent(result.id)}` },
        jsonBody: { ...device, keys: result.keys, connectionString: result.connectionString },
      };
    },

    getDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      return deviceResponse(await service.get(id(request)));
    },

    listDevices: async (request: ApiRequest): Promise<ApiResponse> => {
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
        // A filter that cannot be applied as written is refused, never dropped (dropping it matches everything).
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
      const query = parse(listSchema, plain);
      const page = await service.list({
        top: query.top,
        ...(query.status ? { status: query.status } : {}),
        ...(query.continuationToken ? { continuationToken: query.continuationToken } : {}),
        ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
      });
      return {
        status: 200,
        jsonBody: {
          items: page.items.map(publicRecord),
          continuationToken: page.continuationToken ?? null,
        },
      };
    },

    updateDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const patch = parse(metadataSchema, await readJson(request, false));
      return deviceResponse(
        await service.update(id(request), patch, request.headers.get('if-match') ?? undefined),
      );
    },

    activateDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(statusChangeSchema, await readJson(request, true));
      return deviceResponse(await service.setStatus(id(request), 'enabled', body.metadata));
    },

    deactivateDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(statusChangeSchema, await readJson(request, true));
      return deviceResponse(await service.setStatus(id(request), 'disabled', body.metadata));
    },

    resetCredentials: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(resetSchema, await readJson(request, true));
      return { status: 200, jsonBody: await service.resetCredentials(id(request), body.keys) };
    },

    getDeviceTwin: async (request: ApiRequest): Promise<ApiResponse> => {
      const { etag, ...twin } = await service.getTwin(id(request));
      return { status: 200, jsonBody: twin, headers: { etag } };
    },

    updateDeviceTwin: async (request: ApiRequest): Promise<ApiResponse> => {
      const body = parse(twinPatchSchema, await readJson(request, false));
      const { etag, ...twin } = await service.patchTwin(
        id(request),
        body.desired,
        request.headers.get('if-match') ?? undefined,
      );
      return { status: 200, jsonBody: twin, headers: { etag } };
    },

    unregisterDevice: async (request: ApiRequest): Promise<ApiResponse> => {
      const purge = request.query.get('purgeState');
      if (purge !== null && purge !== 'true' && purge !== 'false') {
        throw new UnprocessableRequestError('Invalid query.', [
          { path: 'purgeState', message: 'must be true or false' },
        ]);
      }
      await service.unregister(id(request), purge === 'true');
      return { status: 204 };
    },
  };
}

/** Query values are strings; metadata filters also match numbers and booleans written the same way. */
function typedValue(value: string): string | number | boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
}
