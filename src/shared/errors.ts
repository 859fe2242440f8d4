/** Base class of every error the domain raises on purpose; the HTTP edge maps them to problem+json. */
export abstract class DomainError extends Error {
  /** Short, stable, machine-readable code (RFC 9457 `type` suffix). */
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The request is malformed or a value is out of range (HTTP 400). */
export class ValidationError extends DomainError {
  readonly code = 'validation-error';
  constructor(
    message: string,
    /** Per-field problems, safe to show to the caller. */
    readonly errors: readonly { path: string; message: string }[] = [],
  ) {
    super(message);
  }
}

/** The request body is well-formed JSON but breaks the schema: unknown fields, wrong types (HTTP 422). */
export class UnprocessableRequestError extends DomainError {
  readonly code = 'unprocessable-request';
  constructor(
    message: string,
    /** Every violation, safe to show to the caller. */
    readonly errors: readonly { path: string; message: string }[],
  ) {
    super(message);
  }
}

/**
 * Provisioning left the identity store and the device catalog out of step and could not repair it (HTTP 500); the
 * orphan was recorded for reconciliation when `recorded` is true.
 */
export class ProvisioningInconsistencyError extends DomainError {
  readonly code = 'provisioning-inconsistency';
  constructor(
    message: string,
    readonly deviceId: string,
    readonly recorded: boolean,
  ) {
    super(message);
  }
}

/** No device with that id (HTTP 404). */
export class DeviceNotFoundError extends DomainError {
  readonly code = 'device-not-found';
  constructor(readonly deviceId: string) {
    super(`Device '${deviceId}' was not found.`);
  }
}

/** A device with that id already exists (HTTP 409). */
export class DeviceAlreadyExistsError extends DomainError {
  readonly code = 'device-already-exists';
  constructor(readonly deviceId: string) {
    super(`Device '${deviceId}' already exists.`);
  }
}

/** No alarm with that id (HTTP 404). */
export class AlarmNotFoundError extends DomainError {
  readonly code = 'alarm-not-found';
  constructor(readonly alarmId: string) {
    super(`Alarm '${alarmId}' was not found.`);
  }
}

/** The resource is not in a state that allows the request, e.g. acknowledging a closed alarm (HTTP 409). */
export class InvalidTransitionError extends DomainError {
  readonly code = 'invalid-transition';
}

/**
 * The client's own precondition failed: the `If-Match` it sent no longer matches the stored entity (HTTP 412).
 * Raised only for an ETag the client sent; a race lost on an ETag we read ourselves is ConcurrentUpdateError.
 */
export class PreconditionFailedError extends DomainError {
  readonly code = 'precondition-failed';
}

/** The store refused a device's state for good (e.g. Cosmos DB 413: the 2 MB item limit); retrying cannot help. */
export class StateRejectedError extends DomainError {
  readonly code = 'state-rejected';
}

/** The store refused an alarm write for good (e.g. Cosmos DB 400 for an id it cannot take); retrying cannot help. */
export class AlarmRejectedError extends DomainError {
  readonly code = 'alarm-rejected';
}

/**
 * A backing service (Cosmos DB, Storage, IoT Hub, the identity store) cannot serve us right now: it is down,
 * timed out or refused the connection. Retrying later can help; over HTTP it is 503 with `Retry-After`, never
 * a verdict on the caller's request (a device SDK gives up on 401, not on 503).
 */
export class ServiceUnavailableError extends DomainError {
  readonly code: string = 'service-unavailable';
  constructor(
    message: string,
    /** How long the service asked us to wait, seconds, when it said so. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** A backing service asks us to slow down (HTTP 429); `retryAfterSeconds` when it said so. */
export class ThrottledError extends ServiceUnavailableError {
  override readonly code = 'throttled';
}

/**
 * We lost an optimistic-concurrency race: a conditional write found the entity changed since we read it. Within a
 * write it is the signal to re-read and re-apply (src/shared/optimistic-update.ts); one that outlasts the retry
 * limit (Concurrency__MaxAttempts) is HTTP 503 with `Retry-After` (the client sent no precondition, so never 412,
 * and the same request is expected to succeed when repeated, so a retryable status rather than 409).
 */
export class ConcurrentUpdateError extends ServiceUnavailableError {
  override readonly code = 'concurrent-update';
  constructor(message: string, retryAfterSeconds = 1) {
    super(message, retryAfterSeconds);
  }
}

/** A setting is missing or malformed; raised once at start-up. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** IoT Hub refused to start a job because too many are active (429; S1 allows 1 concurrent job). */
export class TooManyJobsError extends DomainError {
  readonly code = 'too-many-jobs';
}

/** No job with this id (HTTP 404). */
export class JobNotFoundError extends DomainError {
  readonly code = 'job-not-found';
  constructor(readonly jobId: string) {
    super(`Job '${jobId}' not found.`);
  }
}

/** No provisioning workflow with this id (HTTP 404). */
export class WorkflowNotFoundError extends DomainError {
  readonly code = 'workflow-not-found';
  constructor(readonly instanceId: string) {
    super(`Provisioning workflow '${instanceId}' not found.`);
  }
}

/** The request body is larger than the route accepts (HTTP 413); `maxBytes` is the limit, in bytes. */
export class PayloadTooLargeError extends DomainError {
  readonly code = 'payload-too-large';
  constructor(readonly maxBytes: number) {
    super(`The body is larger than ${maxBytes} bytes, the most this route accepts.`);
  }
}

/** The request body's declared Content-Type is not one the route reads (HTTP 415). */
export class UnsupportedMediaTypeError extends DomainError {
  readonly code = 'unsupported-media-type';
}

/**
 * A catalog entry under this device id was written by someone else (another workflow or registration) and has
 * no identity of ours behind it (HTTP 409): it is neither adopted nor deleted. Remove it with DELETE
 * /api/devices/{id} once it is known to be stale.
 */
export class StaleCatalogEntryError extends DomainError {
  // The problem type URI (urn:problem-type:stale-registry-entry) is public API: it keeps the old word.
  readonly code = 'stale-registry-entry';
  constructor(readonly deviceId: string) {
    super(`A stale catalog entry exists for device '${deviceId}' (written by another registration).`);
  }
}

/**
 * Another credential reset of the same device won the race (HTTP 409): only the winner's keys are handed out, so
 * every key set answered with 200 is one the identity store holds. Retry to get a fresh pair.
 */
export class CredentialsResetConflictError extends DomainError {
  readonly code = 'credentials-reset-conflict';
  constructor(readonly deviceId: string) {
    super(`The credentials of device '${deviceId}' were reset concurrently by another request; retry.`);
  }
}
