/**
 * The local Cosmos DB server (@vercel/cosmosdb-server: the Cosmos REST API over an in-memory account), made
 * durable when given a folder. Every write answered 2xx is first on disk: a document write appends the
 * document's new state (or its deletion) to `journal.jsonl` and fsyncs it before the answer is released (one
 * fsync serves every answer waiting at that moment); any other write (database, container, batch) writes a full
 * snapshot first. `snapshot.json` is written atomically (temp file, fsync, rename) on start, when the journal
 * passes 16 MB and on close; on start the snapshot is loaded and the journal replayed before the port opens.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { readJsonLines, writeAtomically, writeAtomicallySync } from './atomic-file.js';

type Json = Record<string, unknown>;
interface Item {
  read(): Json | undefined;
}
interface Items<T extends Item> {
  _data: Map<string, T>;
  create(data: Json): Json;
  delete(id: string, partition: unknown): void;
  _getPartition(data: Json): unknown;
}
interface CollectionItem extends Item {
  documents: Items<Item>;
}
interface DatabaseItem extends Item {
  collections: Items<CollectionItem>;
  collection(id: string): CollectionItem;
}
interface Account {
  databases: Items<DatabaseItem>;
  database(id: string): DatabaseItem;
}
type Handler = (account: Account, req: IncomingMessage, res: ServerResponse, params: Json) => unknown;

const require = createRequire(import.meta.url);
// The server's own account model and routes (lib/index.js builds its server from the same two modules).
const AccountClass = (
  require('@vercel/cosmosdb-server/lib/account') as { default: new (host: string, port: number) => Account }
).default;
const route = (
  require('@vercel/cosmosdb-server/lib/routes') as {
    default: (req: IncomingMessage) => [Json, Handler] | undefined;
  }
).default;
const { parsePartitionKey } = require('@vercel/cosmosdb-server/lib/utils/get-partition-from-header') as {
  parsePartitionKey: (header: unknown, id: string) => unknown;
};
const certificateFolder = join(require.resolve('@vercel/cosmosdb-server/package.json'), '..');

/** Journal size after which the next write compacts it into the snapshot. */
const COMPACT_AFTER_BYTES = 16 * 1024 * 1024;
const SYSTEM = ['_rid', '_self', '_etag', '_ts'];
/** What lib/index.js answers when the SDK asks for query metrics (all zero). */
const QUERY_METRICS =
  'totalExecutionTimeInMs=0.00;queryCompileTimeInMs=0.00;queryLogicalPlanBuildTimeInMs=0.00;' +
  'queryPhysicalPlanBuildTimeInMs=0.00;queryOptimizationTimeInMs=0.00;VMExecutionTimeInMs=0.00;' +
  'indexLookupTimeInMs=0.00;documentLoadTimeInMs=0.00;systemFunctionExecuteTimeInMs=0.00;' +
  'userFunctionExecuteTimeInMs=0.00;retrievedDocumentCount=0;retrievedDocumentSize=0;outputDocumentCount=1;' +
  'outputDocumentSize=0;writeOutputTimeInMs=0.00;indexUtilizationRatio=0.00';

/** One document's state after a write answered 2xx (`doc: null`: deleted). */
interface Entry {
  seq: number;
  db: string;
  coll: string;
  id: string;
  partition: unknown;
  doc: Json | null;
}

interface Snapshot {
  lastSeq: number;
  databases: { resource: Json; collections: { resource: Json; documents: Json[] }[] }[];
}

export interface LocalCosmosServer {
  server: Server;
  /** Writes the final snapshot (after the server stopped taking requests). No-op in memory. */
  close(): Promise<void>;
}

/** The Cosmos DB server; with `folder`, its data survive restarts and acknowledged writes survive a crash. */
export function createLocalCosmosServer(folder?: string): LocalCosmosServer {
  let account: Account | undefined;
  const store = folder === undefined ? undefined : new CosmosFiles(folder);
  const server = createServer(
    {
      cert: readFileSync(join(certificateFolder, 'cert.pem')),
      key: readFileSync(join(certificateFolder, 'key.pem')),
      minVersion: 'TLSv1',
    },
    (req, res) => {
      if (account) void handle(account, store, req, res);
    },
  );
  server.on('listening', () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    // Loaded before the first request can be read: requests are handled only after this listener returns.
    account = new AccountClass('127.0.0.1', port);
    store?.load(account);
  });
  return { server, close: () => store?.close() ?? Promise.resolve() };
}

/** lib/index.js's request handler, with the write made durable before the answer is sent. */
async function handle(
  account: Account,
  store: CosmosFiles | undefined,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const found = route(req);
  let body: Json;
  try {
    if (!found) {
      res.statusCode = 400;
      body = { message: 'no route' };
    } else {
      const [params, handler] = found;
      try {
        body = ((await handler(account, req, res, params)) ?? {}) as Json;
      } catch (error) {
        body = { message: error instanceof Error ? error.message : String(error) };
        res.statusCode = 500;
      }
      if (res.statusCode > 399 && !body.message) body.message = '';
      if (store && res.statusCode < 300 && isWrite(req)) await store.record(account, req, params, body);
    }
  } catch (error) {
    // Not on disk: the write is not acknowledged (the client retries or reports it).
    res.statusCode = 503;
    body = { message: `local Cosmos persistence failed: ${String(error)}` };
  }
  if (typeof body._etag === 'string') res.setHeader('etag', body._etag);
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-location', `https://${req.headers.host ?? ''}${req.url ?? ''}`);
  // Keep-alive (lib/index.js's `keepAlive` option): answering `close` made every request a new TLS handshake,
  // whose native allocations, at simulator rates, grew the process's RSS by hundreds of MB (the soak).
  res.setHeader('connection', 'keep-alive');
  res.setHeader('x-ms-activity-id', randomUUID());
  res.setHeader('x-ms-request-charge', '1');
  if (req.headers['x-ms-documentdb-populatequerymetrics']) {
    res.setHeader('x-ms-documentdb-query-metrics', QUERY_METRICS);
  }
  if (req.headers['a-im'] && res.statusCode === 200) {
    if (req.headers['if-none-match']) res.statusCode = 304;
    res.setHeader('etag', '1');
  }
  res.end(JSON.stringify(body));
}

const isTrue = (value: string | string[] | undefined) => String(value).toLowerCase() === 'true';
function isWrite(req: IncomingMessage): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return false;
  const query =
    isTrue(req.headers['x-ms-documentdb-isquery']) ||
    req.headers['content-type'] === 'application/query+json';
  return !(req.method === 'POST' && query);
}

/** snapshot.json and journal.jsonl in one folder. */
class CosmosFiles {
  private readonly snapshotFile: string;
  private readonly journalFile: string;
  private journal: FileHandle | undefined;
  private journalBytes = 0;
  private seq = 0;
  private account: Account | undefined;
  private queue: { line?: string; done: () => void; fail: (error: unknown) => void }[] = [];
  private writing: Promise<void> | undefined;

  constructor(private readonly folder: string) {
    this.snapshotFile = join(folder, 'snapshot.json');
    this.journalFile = join(folder, 'journal.jsonl');
  }

  /** Loads the snapshot, replays the journal after it, and writes a fresh snapshot (synchronously: at start). */
  load(account: Account): void {
    this.account = account;
    mkdirSync(this.folder, { recursive: true });
    const snapshot = existsSync(this.snapshotFile)
      ? (JSON.parse(readFileSync(this.snapshotFile, 'utf8')) as Snapshot)
      : { lastSeq: 0, databases: [] };
    restoreSnapshot(account, snapshot);
    this.seq = snapshot.lastSeq;
    for (const entry of readJsonLines<Entry>(this.journalFile)) {
      if (entry.seq <= snapshot.lastSeq) continue;
      applyEntry(account, entry);
      this.seq = Math.max(this.seq, entry.seq);
    }
    writeAtomicallySync(this.snapshotFile, JSON.stringify(takeSnapshot(account, this.seq)));
    closeSync(openSync(this.journalFile, 'w'));
  }

  /** Makes the write just answered durable; resolves once it is on disk. */
  record(account: Account, req: IncomingMessage, params: Json, body: Json): Promise<void> {
    const entry = documentEntry(account, req, params, body);
    if (entry) entry.seq = ++this.seq;
    return new Promise((done, fail) => {
      this.queue.push({ ...(entry ? { line: `${JSON.stringify(entry)}\n` } : {}), done, fail });
      this.writing ??= this.drain().finally(() => (this.writing = undefined));
    });
  }

  async close(): Promise<void> {
    await this.writing;
    if (!this.account) return;
    await this.compact();
    await this.journal?.close();
    this.journal = undefined;
  }

  /** Writes everything queued with one fsync, then releases those answers; a non-document write compacts. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        const text = batch.flatMap((b) => b.line ?? []).join('');
        if (
          batch.some((b) => b.line === undefined) ||
          this.journalBytes + text.length > COMPACT_AFTER_BYTES
        ) {
          await this.compact();
        } else {
          this.journal ??= await open(this.journalFile, 'a');
          await this.journal.write(text);
          await this.journal.datasync();
          this.journalBytes += text.length;
        }
        for (const b of batch) b.done();
      } catch (error) {
        for (const b of batch) b.fail(error);
      }
    }
  }

  /** The whole account as the new snapshot, then an empty journal (its entries are all in the snapshot). */
  private async compact(): Promise<void> {
    if (!this.account) return;
    await writeAtomically(this.snapshotFile, JSON.stringify(takeSnapshot(this.account, this.seq)));
    this.journal ??= await open(this.journalFile, 'a');
    await this.journal.truncate(0);
    await this.journal.datasync();
    this.journalBytes = 0;
  }
}

/** A document write as an entry (its state now); undefined for other writes, which take a full snapshot. */
function documentEntry(account: Account, req: IncomingMessage, params: Json, body: Json): Entry | undefined {
  const { dbId, collId, docId } = params as { dbId?: string; collId?: string; docId?: string };
  if (dbId === undefined || collId === undefined || /\/udfs(\/|$)/.test(req.url ?? '')) return undefined;
  if (isTrue(req.headers['x-ms-cosmos-is-batch-request'])) return undefined;
  const documents = account.database(dbId).collection(collId).documents;
  if (req.method === 'DELETE' && docId !== undefined) {
    const partition = parsePartitionKey(req.headers['x-ms-documentdb-partitionkey'], docId);
    return { seq: 0, db: dbId, coll: collId, id: docId, partition, doc: null };
  }
  if (typeof body.id !== 'string' || (docId === undefined && req.method !== 'POST')) return undefined;
  const partition = documents._getPartition(body);
  return { seq: 0, db: dbId, coll: collId, id: body.id, partition, doc: body };
}

function applyEntry(account: Account, entry: Entry): void {
  const collection = account.database(entry.db).collection(entry.coll);
  if (!collection.read()) return;
  try {
    collection.documents.delete(entry.id, entry.partition);
  } catch {
    // not there: nothing to replace
  }
  if (entry.doc) createKeeping(collection.documents, entry.doc);
}

/** Creates an item and gives it back its etag and timestamp (a client's If-Match still holds after a restart). */
function createKeeping(items: Items<Item>, resource: Json): void {
  const fresh = Object.fromEntries(Object.entries(resource).filter(([key]) => !SYSTEM.includes(key)));
  const stored = items.create(fresh);
  if (resource._etag !== undefined) stored._etag = resource._etag;
  if (resource._ts !== undefined) stored._ts = resource._ts;
}

function takeSnapshot(account: Account, lastSeq: number): Snapshot {
  const read = <T extends Item>(items: Items<T>) =>
    [...items._data.values()].flatMap((item) => {
      const resource = item.read();
      return resource ? [{ item, resource }] : [];
    });
  return {
    lastSeq,
    databases: read(account.databases).map(({ item, resource }) => ({
      resource,
      collections: read(item.collections).map((c) => ({
        resource: c.resource,
        documents: read(c.item.documents).map((d) => d.resource),
      })),
    })),
  };
}

function restoreSnapshot(account: Account, snapshot: Snapshot): void {
  for (const database of snapshot.databases) {
    createKeeping(account.databases, database.resource);
    const id = String(database.resource.id);
    for (const collection of database.collections) {
      createKeeping(account.database(id).collections, collection.resource);
      const documents = account.database(id).collection(String(collection.resource.id)).documents;
      for (const doc of collection.documents) createKeeping(documents, doc);
    }
  }
}
