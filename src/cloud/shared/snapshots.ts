import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import { SharedDefaults, type SharedColumnType, type SharedTable, type SnapshotAnswer, type SnapshotChunkAnswer } from '../../protocol/shared-sync.js';
import { quoteIdent } from '../identifiers.js';
import type { Queryable, Store } from '../store/store.js';
import { pulls, type SharedSyncConfig } from './declarations.js';
import type { Pusher } from './push-sessions.js';
import { MetaColumns as M, castSharedFromText, sharedTableRef, wireJsonSql } from './shared-columns.js';

const q = quoteIdent;

interface Snapshot {
  scope: string;
  seq: string;
  chunks: string[];
  rows: number;
  bytes: number;
  finished: boolean;
  error: unknown;
  createdAt: number;
  waiters: (() => void)[];
  /** Rows per chunk: what the device asked for, else the server's limit. */
  chunkRows: number;
}

export interface SnapshotLimits {
  /** Rows per chunk. */
  chunkRows: number;
  /** Encoded bytes all open snapshots may hold; a new snapshot beyond it is refused as unavailable (retry later). */
  maxBytes: number;
  ttlMs: number;
}

const DEFAULT_LIMITS: SnapshotLimits = { chunkRows: SharedDefaults.chunkRows * 4, maxBytes: 2 * 1024 ** 3, ttlMs: SharedDefaults.sessionTtlMs };

/**
 * Frozen, chunked snapshots of a scope's shared tables for hydration.
 *
 * One REPEATABLE READ transaction reads the scope's head and every row, so the
 * snapshot is exactly the state after bundle `snapshot_seq`, whatever commits
 * meanwhile. Chunks are encoded as the transaction reads them and handed out as
 * soon as each is ready, so the device writes chunk i while the server reads
 * chunk i+1. They are kept in this process's memory (bounded by maxBytes) until
 * the device drops the snapshot or it expires: a device must fetch them from the
 * server that built them, and restarts its hydration if that server goes away.
 */
export class SnapshotBuilder {
  readonly #store: Store;
  readonly #config: SharedSyncConfig;
  readonly #limits: SnapshotLimits;
  readonly #log: Logger | undefined;
  readonly #snapshots = new Map<string, Snapshot>();

  constructor(store: Store, config: SharedSyncConfig, options: { limits?: Partial<SnapshotLimits>; logger?: Logger } = {}) {
    this.#store = store;
    this.#config = config;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#log = options.logger;
  }

  get heldBytes(): number {
    let bytes = 0;
    for (const snapshot of this.#snapshots.values()) bytes += snapshot.bytes;
    return bytes;
  }

  /** Snapshots held in memory, for metrics. */
  get openCount(): number {
    return this.#snapshots.size;
  }

  /** Starts a snapshot and answers once its sequence number is fixed; the chunks follow. */
  async create(who: Pusher, options: { chunkRows?: number } = {}): Promise<SnapshotAnswer> {
    this.#expire();
    if (this.heldBytes >= this.#limits.maxBytes) throw new SynclineError('unavailable', 'too many snapshots are being served; retry shortly', { held_bytes: this.heldBytes });
    const id = randomUUID();
    const snapshot: Snapshot = { scope: who.scope, seq: '0', chunks: [], rows: 0, bytes: 0, finished: false, error: undefined, createdAt: Date.now(), waiters: [], chunkRows: options.chunkRows ?? this.#limits.chunkRows };
    let fixed!: (seq: string) => void;
    const seqFixed = new Promise<string>((resolve) => (fixed = resolve));
    const build = this.#store.transaction(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const { rows } = await tx.query<{ head_seq: string }>('SELECT head_seq::text AS head_seq FROM sync_scopes WHERE scope = $1', [who.scope]);
      snapshot.seq = rows[0]?.head_seq ?? '0';
      this.#snapshots.set(id, snapshot);
      fixed(snapshot.seq);
      for (const table of this.#config.tables.filter((t) => pulls(t.direction))) await this.#readTable(tx, snapshot, table, who.source);
    });
    build
      .catch((error: unknown) => {
        snapshot.error = error;
        this.#log?.error({ err: error, scope: who.scope, snapshot_id: id }, 'snapshot failed');
      })
      .finally(() => {
        snapshot.finished = true;
        this.#notify(snapshot);
        this.#log?.info({ scope: who.scope, snapshot_id: id, rows: snapshot.rows, chunks: snapshot.chunks.length }, 'snapshot built');
      });
    const seq = await Promise.race([seqFixed, build.then(() => snapshot.seq)]);
    if (snapshot.error) throw snapshot.error;
    return { snapshot_id: id, snapshot_seq: seq };
  }

  /** Chunk `index` once it is built, or the end marker after the last one. */
  async chunk(who: Pusher, id: string, index: number): Promise<string> {
    const snapshot = this.#snapshots.get(id);
    if (!snapshot || snapshot.scope !== who.scope) throw new SynclineError('not_found', 'no such snapshot (it expired, was dropped, or was built by another server)', { snapshot_id: id.slice(0, 64) });
    while (index >= snapshot.chunks.length && !snapshot.finished) await new Promise<void>((resolve) => snapshot.waiters.push(resolve));
    if (snapshot.error) throw new SynclineError('unavailable', 'the snapshot could not be built; start another', { snapshot_id: id });
    if (index < snapshot.chunks.length) return snapshot.chunks[index]!;
    const end: SnapshotChunkAnswer = { end: true, chunk_count: snapshot.chunks.length, row_count: snapshot.rows };
    return JSON.stringify(end);
  }

  drop(who: Pusher, id: string): void {
    const snapshot = this.#snapshots.get(id);
    if (snapshot && snapshot.scope === who.scope) this.#snapshots.delete(id);
  }

  #notify(snapshot: Snapshot): void {
    for (const resolve of snapshot.waiters.splice(0)) resolve();
  }

  #expire(): void {
    const cutoff = Date.now() - this.#limits.ttlMs;
    for (const [id, snapshot] of this.#snapshots) if (snapshot.finished && snapshot.createdAt < cutoff) this.#snapshots.delete(id);
  }

  /**
   * Reads a table in primary-key order, a page at a time (keyset on the key, which
   * the primary key's index serves): the device then inserts in its own key order.
   */
  async #readTable(tx: Queryable, snapshot: Snapshot, table: SharedTable, requester: string): Promise<void> {
    const keyColumns = table.key.map((name) => table.columns.find((c) => c.name === name)!);
    const head = JSON.stringify({ table: table.name, columns: table.columns.map((c) => c.name) }).slice(0, -1);
    const order = keyColumns.map((c) => q(c.name)).join(', ');
    const after = `(${order}) > (${keyColumns.map((c, i) => castSharedFromText(`$${i + 4}`, c.type)).join(', ')})`;
    // PostgreSQL renders each row as its wire JSON: this process then only joins text, which on a
    // busy machine leaves the CPU to the device writing the previous chunk.
    const row = `json_build_array(${table.columns.map((c) => wireJsonSql(q(c.name), c.type)).join(', ')})::text`;
    const select = (from: boolean) => `SELECT ${row} AS j, ${q(M.version)}::text AS v, ${q(M.hlc)} AS h, ${q(M.source)} = $3 AS own, ${keyColumns.map((c, i) => `${q(c.name)} AS k${i}`).join(', ')}
      FROM ${sharedTableRef(table.name)} WHERE ${q(M.scope)} = $1${from ? ` AND ${after}` : ''} ORDER BY ${order} LIMIT $2`;
    const first = select(false);
    const rest = select(true);
    const chunkRows = snapshot.chunkRows;
    const page = (last?: Record<string, unknown>) =>
      tx.query<Record<string, unknown>>(last ? rest : first, [snapshot.scope, chunkRows, requester, ...(last ? keyColumns.map((c, i) => keyParam(last[`k${i}`], c.type)) : [])]);
    // The next page is asked for before this one is joined, so PostgreSQL reads while this process answers.
    for (let next = page(); ; ) {
      const { rows } = await next;
      const more = rows.length === chunkRows;
      if (more) next = page(rows.at(-1));
      if (rows.length > 0) {
        const own = rows.flatMap((r, i) => (r.own === true ? [i] : []));
        const body = `${head},"rows":[${rows.map((r) => r.j).join(',')}],"versions":${JSON.stringify(rows.map((r) => r.v))},"hlcs":${JSON.stringify(rows.map((r) => r.h))},"own":${JSON.stringify(own)}}`;
        snapshot.chunks.push(body);
        snapshot.rows += rows.length;
        snapshot.bytes += body.length;
        this.#notify(snapshot);
      }
      if (!more) return;
    }
  }
}

/** A key value as read from the store, as the text castSharedFromText turns back into it. */
function keyParam(value: unknown, type: SharedColumnType): string {
  return type === 'BLOB' ? Buffer.from(value as Uint8Array).toString('hex') : String(value);
}

