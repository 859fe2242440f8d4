import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import pLimit from 'p-limit';
import {
  PAYLOAD_EXCERPT_CHARS,
  TERMINAL_JOB_STATUSES,
  payloadExcerpt,
  type DeviceJobResult,
  type DeviceJobStatistics,
  type DeviceMethodInvoker,
  type DirectMethodCall,
  type HubJob,
  type HubJobRequest,
  type HubJobStatus,
  type HubJobTarget,
  type HubJobRunner,
  type MethodResult,
} from '../../jobs/ports.js';
import { buildQueryCondition } from '../../jobs/query-condition.js';
import type { DeviceCatalog, VersionedDeviceRecord } from '../../provisioning/catalog.js';
import type { TwinStore } from '../../provisioning/twin.js';
import {
  ConcurrentUpdateError,
  DomainError,
  ServiceUnavailableError,
  UnprocessableRequestError,
} from '../../shared/errors.js';
import { optimisticUpdate } from '../../shared/optimistic-update.js';
import { toStorageKey } from '../storage-keys.js';
import {
  isConflict,
  isNotFound,
  isPreconditionFailed,
  translateTableError as translate,
} from '../storage/errors.js';
import { lazyTable } from '../tables/lazy-table.js';

const PARTITION = 'job';
/** Catalog page size while resolving a status target (the device catalog allows 1–1000). */
const PAGE_SIZE = 1000;
/** Azure Tables takes at most 100 entities of one partition per transaction. */
const TRANSACTION_SIZE = 100;

interface JobEntity {
  partitionKey: string;
  rowKey: string;
  hubJobId: string;
  type: string;
  status: HubJobStatus;
  deviceCount: number;
  succeededCount: number;
  failedCount: number;
  runningCount: number;
  pendingCount: number;
  failureReason?: string;
  startedAt: string;
  endedAt?: string;
  maxExecutionTimeInSeconds: number;
}

/** What the local job runner needs: the local twins, the device catalog, device connections and its record table. */
export interface LocalHubJobRunnerDeps {
  twins: TwinStore;
  catalog: DeviceCatalog;
  methods: DeviceMethodInvoker;
  /** The table that keeps one record per job (partition 'job', row = the encoded job id). */
  hubJobTable: TableClient;
}

export interface LocalHubJobRunnerOptions {
  createTableIfMissing: boolean;
  /** Devices worked on at once per job. */
  concurrency?: number;
  now?: () => Date;
}

/**
 * The jobs (`<table>/<job id>`) a runner of this process is running now. A record 'running' that is not among
 * them was left by a process that stopped mid-run — one local run owns its data folder, and the local runner
 * assumes one worker process (FUNCTIONS_WORKER_PROCESS_COUNT 1, the default): the next start runs it again.
 */
const runningHere = new Set<string>();

/** One device's outcome, as the local runner keeps it (a partition per job, rows in the order of the target). */
// A type alias, not an interface: the table client wants a type with an implicit index signature.
type DeviceResultEntity = {
  partitionKey: string;
  rowKey: string;
  result: string;
};

/**
 * The HubJobRunner of the embedded local run, where there is no IoT Hub: it resolves the target against the
 * catalog, patches twins or calls direct methods on each device, and keeps the outcome in Azure Table storage,
 * each device's outcome too (as IoT Hub keeps device jobs). A job runs to its end inside `start`, so `get` sees
 * it completed at once.
 */
export class LocalHubJobRunner implements HubJobRunner {
  private readonly table: () => Promise<TableClient>;
  private readonly concurrency: number;

  constructor(
    private readonly deps: LocalHubJobRunnerDeps,
    private readonly options: LocalHubJobRunnerOptions,
  ) {
    this.table = lazyTable(deps.hubJobTable, options.createTableIfMissing);
    this.concurrency = options.concurrency ?? 10;
  }

  async start(request: HubJobRequest): Promise<HubJob> {
    // The same targets IoT Hub would refuse are refused here too.
    buildQueryCondition(request.target);
    const work = this.workFor(request);
    const claimed = await this.claim(request);
    if ('existing' in claimed) return toHubJob(claimed.existing, this.now());
    try {
      return await this.run(request, claimed, work);
    } finally {
      runningHere.delete(this.mark(request.hubJobId));
    }
  }

  /** Runs a claimed job to its end and records the outcome. */
  private async run(
    request: HubJobRequest,
    claimed: { entity: JobEntity; etag: string },
    work: (deviceId: string) => Promise<DeviceJobResult>,
  ): Promise<HubJob> {
    let deviceIds: string[];
    try {
      deviceIds = await this.resolve(request.target);
    } catch (error) {
      if (error instanceof ServiceUnavailableError) {
        // Give the id back so the caller's retry can run the job.
        await (await this.table()).deleteEntity(PARTITION, claimed.entity.rowKey).catch(() => undefined);
        throw error;
      }
      const reason = error instanceof DomainError ? error.message : 'the target could not be resolved';
      return this.finish(claimed, { status: 'failed', failureReason: `The job could not run: ${reason}` });
    }

    const limit = pLimit(this.concurrency);
    const outcomes = await Promise.all(
      deviceIds.map((id) => limit(() => work(id).catch((error: unknown) => failed(id, error)))),
    );
    await this.saveResults(request.hubJobId, outcomes);
    const succeeded = outcomes.filter((o) => o.status === 'succeeded').length;
    return this.finish(claimed, {
      status: 'completed',
      statistics: {
        deviceCount: deviceIds.length,
        succeededCount: succeeded,
        failedCount: deviceIds.length - succeeded,
        runningCount: 0,
        pendingCount: 0,
      },
    });
  }

  async get(hubJobId: string): Promise<HubJob | undefined> {
    const entity = await this.read(hubJobId);
    return entity && toHubJob(entity.value, this.now());
  }

  async cancel(hubJobId: string): Promise<void> {
    const client = await this.table();
    await optimisticUpdate(`Job '${hubJobId}'`, async () => {
      const current = await this.read(hubJobId);
      if (!current || TERMINAL_JOB_STATUSES.has(current.value.status)) return;
      try {
        await client.updateEntity(
          { ...current.value, status: 'cancelled', endedAt: this.now().toISOString() },
          'Replace',
          { etag: current.etag },
        );
      } catch (error) {
        throw translate(error, `Job '${hubJobId}'`);
      }
    });
  }

  async deviceResults(hubJobId: string, max: number): Promise<DeviceJobResult[]> {
    const results: DeviceJobResult[] = [];
    if (max <= 0) return results;
    const entities = (await this.table()).listEntities<DeviceResultEntity>({
      queryOptions: { filter: odata`PartitionKey eq ${resultsPartition(hubJobId)}` },
    });
    for await (const entity of entities) {
      results.push(JSON.parse(entity.result) as DeviceJobResult);
      if (results.length >= max) break;
    }
    return results;
  }

  /** What to do to one device, and what came of it. */
  private workFor(request: HubJobRequest): (deviceId: string) => Promise<DeviceJobResult> {
    const endedAt = () => this.now().toISOString();
    if (request.type === 'twinUpdate') {
      const patch = request.twinPatch;
      if (patch === undefined) throw incomplete('twinPatch', 'required for a twinUpdate job');
      return async (deviceId) => {
        await this.deps.twins.patchDesired(deviceId, patch);
        return { deviceId, status: 'succeeded', endedAt: endedAt() };
      };
    }
    const method: DirectMethodCall | undefined = request.method;
    if (method === undefined) throw incomplete('method', 'required for a deviceMethod job');
    return async (deviceId) => {
      const answer = await this.deps.methods.invoke(deviceId, method);
      const ok = answer.status >= 200 && answer.status < 300;
      return {
        deviceId,
        status: ok ? 'succeeded' : 'failed',
        // 404 is IoT Hub's answer for a device that is not connected (error 404103 DeviceNotOnline).
        ...(answer.status === 404
          ? { error: { code: 'DeviceNotOnline', message: 'The device is not connected.' } }
          : {}),
        methodResponse: { status: answer.status, ...payloadExcerpt(answer.payload) },
        endedAt: endedAt(),
      };
    };
  }

  /** Keeps each device's outcome, 100 rows per transaction; a second save of the same job replaces rows. */
  private async saveResults(hubJobId: string, results: readonly DeviceJobResult[]): Promise<void> {
    const client = await this.table();
    const partitionKey = resultsPartition(hubJobId);
    for (let start = 0; start < results.length; start += TRANSACTION_SIZE) {
      const actions: TransactionAction[] = [];
      for (let i = start; i < Math.min(start + TRANSACTION_SIZE, results.length); i++) {
        const entity: DeviceResultEntity = {
          partitionKey,
          rowKey: String(i).padStart(8, '0'),
          result: JSON.stringify(results[i]),
        };
        actions.push(['upsert', entity, 'Replace']);
      }
      await client.submitTransaction(actions).catch((error: unknown) => {
        throw translate(error);
      });
    }
  }

  /** Device ids the target matches, as IoT Hub's query would: only devices that exist. */
  private async resolve(target: HubJobTarget): Promise<string[]> {
    // The local twin store keeps no tags, so no local device carries the tag a target asks for.
    if (target.tags !== undefined && Object.keys(target.tags).length > 0) return [];
    if (target.deviceIds !== undefined) {
      const limit = pLimit(this.concurrency);
      const records = await Promise.all(
        [...new Set(target.deviceIds)].map((id) => limit(() => this.deps.catalog.get(id))),
      );
      return records
        .filter(
          (r): r is VersionedDeviceRecord =>
            r !== undefined && (target.status === undefined || r.status === target.status),
        )
        .map((r) => r.id);
    }
    if (target.status === undefined) return [];
    const ids: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.deps.catalog.query({
        status: target.status,
        top: PAGE_SIZE,
        ...(continuationToken ? { continuationToken } : {}),
      });
      for (const r of page.items) ids.push(r.id);
      continuationToken = page.continuationToken;
    } while (continuationToken);
    return ids;
  }

  /** Records the job as running, atomically: a second start of the same id gets the first one's record. */
  private async claim(
    request: HubJobRequest,
  ): Promise<{ entity: JobEntity; etag: string } | { existing: JobEntity }> {
    const client = await this.table();
    const entity: JobEntity = {
      partitionKey: PARTITION,
      rowKey: toStorageKey(request.hubJobId),
      hubJobId: request.hubJobId,
      type: request.type,
      status: 'running',
      deviceCount: 0,
      succeededCount: 0,
      failedCount: 0,
      runningCount: 0,
      pendingCount: 0,
      startedAt: this.now().toISOString(),
      maxExecutionTimeInSeconds: request.maxExecutionTimeInSeconds,
    };
    const id = request.hubJobId;
    const mark = this.mark(id);
    return optimisticUpdate(`Job '${id}'`, async () => {
      if (!runningHere.has(mark)) {
        // Marked before the write, so a start of the same id at the same time in this process never takes over.
        runningHere.add(mark);
        try {
          const { etag } = await client.createEntity(entity);
          return { entity, etag: etag ?? '*' };
        } catch (error) {
          if (!isConflict(error)) {
            runningHere.delete(mark);
            throw translate(error);
          }
        }
        const taken = await this.takeOver(id).catch((error: unknown) => {
          runningHere.delete(mark);
          throw error;
        });
        if (taken) return taken;
        runningHere.delete(mark);
      }
      const existing = await this.read(id);
      if (existing) return { existing: existing.value };
      // Gone again: a throttled attempt gave the id back in between.
      throw new ConcurrentUpdateError(`Job '${id}' is being started concurrently; retry.`);
    });
  }

  /** The key of a job in `runningHere`: runners over different tables keep different jobs. */
  private mark(hubJobId: string): string {
    return `${this.deps.hubJobTable.tableName}/${hubJobId}`;
  }

  /**
   * A record of this id exists and no runner of this process runs it: when a stopped process left it running
   * (still within its time limit), this start claims it (conditional write) and runs it again; undefined when
   * the record is someone else's to report.
   */
  private async takeOver(id: string): Promise<{ entity: JobEntity; etag: string } | undefined> {
    const existing = await this.read(id);
    if (!existing || toHubJob(existing.value, this.now()).status !== 'running') return undefined;
    try {
      const client = await this.table();
      const { etag } = await client.updateEntity(existing.value, 'Replace', { etag: existing.etag });
      return { entity: existing.value, etag: etag ?? '*' };
    } catch (error) {
      if (isPreconditionFailed(error))
        throw new ConcurrentUpdateError(`Job '${id}' changed while resuming; retry.`);
      throw translate(error);
    }
  }

  private async finish(
    claimed: { entity: JobEntity; etag: string },
    outcome: { status: HubJobStatus; statistics?: DeviceJobStatistics; failureReason?: string },
  ): Promise<HubJob> {
    const client = await this.table();
    const done: JobEntity = {
      ...claimed.entity,
      ...outcome.statistics,
      status: outcome.status,
      endedAt: this.now().toISOString(),
      ...(outcome.failureReason ? { failureReason: outcome.failureReason } : {}),
    };
    try {
      await client.updateEntity(done, 'Replace', { etag: claimed.etag });
      return toHubJob(done, this.now());
    } catch (error) {
      if (!isPreconditionFailed(error)) throw translate(error);
    }
    // Cancelled while it ran: it stays cancelled, with what it did.
    const cancelled: JobEntity = { ...done, status: 'cancelled' };
    await client.updateEntity(cancelled, 'Replace');
    return toHubJob(cancelled, this.now());
  }

  private async read(hubJobId: string): Promise<{ value: JobEntity; etag: string } | undefined> {
    try {
      const entity = await (await this.table()).getEntity<JobEntity>(PARTITION, toStorageKey(hubJobId));
      return { value: ownFields(entity), etag: entity.etag };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translate(error);
    }
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }
}

/** Answers every direct method as IoT Hub does for a device that is not connected (404). */
export class OfflineDevices implements DeviceMethodInvoker {
  invoke(_deviceId: string, _method: DirectMethodCall): Promise<MethodResult> {
    return Promise.resolve({ status: 404, payload: { message: 'device not online' } });
  }
}

function toHubJob(entity: JobEntity, now: Date): HubJob {
  const job: HubJob = {
    hubJobId: entity.hubJobId,
    status: entity.status,
    statistics: {
      deviceCount: entity.deviceCount,
      succeededCount: entity.succeededCount,
      failedCount: entity.failedCount,
      runningCount: entity.runningCount,
      pendingCount: entity.pendingCount,
    },
  };
  if (entity.failureReason) job.failureReason = entity.failureReason;
  // A job still 'running' past its time limit was left behind by a process that stopped mid-run.
  const deadline = Date.parse(entity.startedAt) + entity.maxExecutionTimeInSeconds * 1000;
  if (!TERMINAL_JOB_STATUSES.has(job.status) && now.getTime() > deadline) {
    job.status = 'failed';
    job.failureReason = 'The local runtime stopped before the job finished.';
  }
  return job;
}

/** The record's own fields, without the table's metadata (etag, timestamp), so it can be written back. */
function ownFields(entity: JobEntity): JobEntity {
  const own: JobEntity = {
    partitionKey: entity.partitionKey,
    rowKey: entity.rowKey,
    hubJobId: entity.hubJobId,
    type: entity.type,
    status: entity.status,
    deviceCount: entity.deviceCount,
    succeededCount: entity.succeededCount,
    failedCount: entity.failedCount,
    runningCount: entity.runningCount,
    pendingCount: entity.pendingCount,
    startedAt: entity.startedAt,
    maxExecutionTimeInSeconds: entity.maxExecutionTimeInSeconds,
  };
  if (entity.failureReason !== undefined) own.failureReason = entity.failureReason;
  if (entity.endedAt !== undefined) own.endedAt = entity.endedAt;
  return own;
}

const resultsPartition = (hubJobId: string) => `devices-${toStorageKey(hubJobId)}`;

/** A device the job could not work on (the twin store or the method channel failed). */
function failed(deviceId: string, error: unknown): DeviceJobResult {
  // Only our own errors' words are shown: an SDK's message may name endpoints.
  if (!(error instanceof DomainError)) {
    return { deviceId, status: 'failed', error: { code: 'JobFailed', message: 'The operation failed.' } };
  }
  const message = error.message.slice(0, PAYLOAD_EXCERPT_CHARS);
  return { deviceId, status: 'failed', error: { code: error.code, message } };
}

const incomplete = (path: string, message: string) =>
  new UnprocessableRequestError('The job request is incomplete.', [{ path, message }]);
