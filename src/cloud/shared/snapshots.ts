import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import { SharedDefaults, type SnapshotAnswer, type SnapshotChunkAnswer } from '../../protocol/shared-sync.js';
import { isUuid } from '../auth/devices.js';
import type { Store } from '../store/store.js';
import { pulls, type SharedSyncConfig } from './declarations.js';
import type { Pusher } from './push-sessions.js';
import { readTableChunks } from './snapshot-chunks.js';
import { SNAPSHOT_LIMIT_DEFAULTS, type SnapshotLimits } from './snapshot-limits.js';

export type { SnapshotLimits } from './snapshot-limits.js';

const DEFAULT_LIMITS: SnapshotLimits = { chunkRows: SharedDefaults.chunkRows * 4, ...SNAPSHOT_LIMIT_DEFAULTS };

/** A build running in this process. */
interface LocalBuild {
  scope: string;
  /** PGlite only: chunks not yet committed (PGlite's one connection cannot read them before), served from here until then. */
  pending: string[] | undefined;
  count: number;
  finished: boolean;
  error: unknown;
  dropped: boolean;
  waiters: (() => void)[];
}

interface ChunkRow {
  status: 'building' | 'done' | 'failed';
  chunk_count: number;
  row_count: string;
  dead: boolean;
}

/**
 * Frozen, chunked snapshots of a scope's shared tables for hydration.
 *
 * One REPEATABLE READ transaction reads the scope's head and every row, so the
 * snapshot is exactly the state after bundle `snapshot_seq`. Chunks are stored in
 * PostgreSQL (sync_snapshot_chunks) as they are read, so any server process
 * serves any chunk while the build goes on, and no heap holds them. Per scope,
 * at most maxPerScope snapshots and maxScopeBytes exist; one nobody reads for
 * idleMs is freed, as is one whose builder died (its PostgreSQL backend is gone).
 * PGlite is one process with one connection: there, chunks of a build in
 * progress are served from memory until its transaction commits.
 */
export class SnapshotBuilder {
  readonly #store: Store;
  readonly #config: SharedSyncConfig;
  readonly #limits: SnapshotLimits;
  readonly #log: Logger | undefined;
  readonly #local = new Map<string, LocalBuild>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(store: Store, config: SharedSyncConfig, options: { limits?: Partial<SnapshotLimits>; logger?: Logger } = {}) {
    this.#store = store;
    this.#config = config;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#log = options.logger;
    this.#sweeper = setInterval(() => this.#expire().catch((error: unknown) => this.#log?.warn({ err: error }, 'could not free expired snapshots')), this.#limits.idleMs / 4);
    this.#sweeper.unref();
  }

  stop(): void {
    clearInterval(this.#sweeper);
  }

  /** Snapshots this process is building, for metrics (their chunks are in PostgreSQL). */
  get openCount(): number {
    return this.#local.size;
  }

  /** Bytes of chunks this process holds in memory: only PGlite builds not yet committed. */
  get heldBytes(): number {
    let bytes = 0;
    for (const local of this.#local.values()) for (const chunk of local.pending ?? []) bytes += chunk.length;
    return bytes;
  }

  /** Starts a snapshot and answers once its sequence number is fixed; the chunks follow. */
  async create(who: Pusher, options: { chunkRows?: number } = {}): Promise<SnapshotAnswer> {
    await this.#expire();
    const { rows: held } = await this.#store.query<{ bytes: string }>('SELECT coalesce(sum(bytes), 0)::text AS bytes FROM sync_snapshots');
    if (Number(held[0]!.bytes) >= this.#limits.maxBytes) throw new SynclineError('unavailable', 'too many snapshots are being served; retry shortly', { held_bytes: held[0]!.bytes });
    const { rows: evicted } = await this.#store.query<{ id: string }>(
      'DELETE FROM sync_snapshots WHERE id IN (SELECT id FROM sync_snapshots WHERE scope = $1 ORDER BY created_at DESC OFFSET $2) RETURNING id',
      [who.scope, this.#limits.maxPerScope - 1],
    );
    for (const { id } of evicted) this.#markDropped(id);
    const id = randomUUID();
    const local: LocalBuild = { scope: who.scope, pending: this.#store.kind === 'pglite' ? [] : undefined, count: 0, finished: false, error: undefined, dropped: false, waiters: [] };
    this.#local.set(id, local);
    let fixed!: (seq: string) => void;
    const seqFixed = new Promise<string>((resolve) => (fixed = resolve));
    const build = this.#store.transaction(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const { rows } = await tx.query<{ head_seq: string; pid: number }>('SELECT (SELECT head_seq::text FROM sync_scopes WHERE scope = $1) AS head_seq, pg_backend_pid() AS pid', [who.scope]);
      const seq = rows[0]?.head_seq ?? '0';
      // Chunks go in through another connection, so other processes see them at once; PGlite has only this one.
      const write = local.pending ? tx : this.#store;
      await write.query('INSERT INTO sync_snapshots (id, scope, snapshot_seq, chunk_rows, builder_pid) VALUES ($1, $2, $3::bigint, $4, $5)', [
        id,
        who.scope,
        seq,
        options.chunkRows ?? this.#limits.chunkRows,
        local.pending ? null : rows[0]!.pid,
      ]);
      fixed(seq);
      for (const table of this.#config.tables.filter((t) => pulls(t.direction))) {
        await readTableChunks(tx, who.scope, table, who.source, options.chunkRows ?? this.#limits.chunkRows, async (chunk) => {
          if (local.dropped) throw new SynclineError('not_found', 'the snapshot was dropped while it was built', { snapshot_id: id });
          const { rows: after } = await write.query<{ scope_bytes: string }>(
            `WITH c AS (INSERT INTO sync_snapshot_chunks (snapshot_id, chunk_index, body) VALUES ($1, $2, $3))
             UPDATE sync_snapshots SET chunk_count = $2 + 1, row_count = row_count + $4, bytes = bytes + $5, beat_at = now() WHERE id = $1
             RETURNING (SELECT sum(bytes) FROM sync_snapshots WHERE scope = $6)::text AS scope_bytes`,
            [id, local.count, chunk.body, chunk.rows, chunk.body.length, who.scope],
          );
          if (after.length === 0) throw new SynclineError('not_found', 'the snapshot was freed while it was built', { snapshot_id: id });
          if (Number(after[0]!.scope_bytes) + chunk.body.length > this.#limits.maxScopeBytes) {
            throw new SynclineError('unavailable', `this scope's snapshots would hold more than ${this.#limits.maxScopeBytes} bytes`, { snapshot_id: id });
          }
          local.pending?.push(chunk.body);
          local.count++;
          this.#notify(local);
        });
      }
      await write.query(`UPDATE sync_snapshots SET status = 'done', beat_at = now() WHERE id = $1`, [id]);
    });
    build
      .catch(async (error: unknown) => {
        local.error = error;
        if (!local.dropped) this.#log?.error({ err: error, scope: who.scope, snapshot_id: id }, 'snapshot failed');
        await this.#store.query(`UPDATE sync_snapshots SET status = 'failed' WHERE id = $1`, [id]).catch(() => {});
      })
      .finally(() => {
        local.finished = true;
        this.#local.delete(id);
        this.#notify(local);
        this.#log?.info({ scope: who.scope, snapshot_id: id, chunks: local.count }, 'snapshot built');
      });
    const seq = await Promise.race([seqFixed, build.then(() => '')]);
    if (local.error) throw local.error;
    return { snapshot_id: id, snapshot_seq: seq };
  }

  /** Chunk `index` once it is built, or the end marker after the last one. */
  async chunk(who: Pusher, id: string, index: number): Promise<string> {
    if (!isUuid(id)) throw notFound(id);
    for (;;) {
      const local = this.#local.get(id);
      if (local && local.scope !== who.scope) throw notFound(id);
      if (local?.pending) {
        if (index < local.pending.length) return local.pending[index]!;
        if (local.error) throw failed(id);
        await this.#wait(local);
        continue;
      }
      // The chunk is read by a statement of its own, after the status: an UPDATE that waited for the
      // builder's row lock returns the builder's newest row ('done') while a subquery of the same
      // statement still reads the older snapshot, which can miss the last chunks (end marker too early).
      const { rows } = await this.#store.query<ChunkRow>(
        `UPDATE sync_snapshots s SET read_at = now() WHERE s.id = $1 AND s.scope = $2
         RETURNING s.status, s.chunk_count, s.row_count::text AS row_count,
           s.status = 'building' AND (s.beat_at < now() - make_interval(secs => $3) OR (s.builder_pid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.builder_pid))) AS dead`,
        [id, who.scope, this.#limits.stallMs / 1000],
      );
      const row = rows[0];
      if (!row) throw notFound(id);
      const { rows: chunks } = await this.#store.query<{ body: string }>('SELECT body FROM sync_snapshot_chunks WHERE snapshot_id = $1 AND chunk_index = $2', [id, index]);
      if (chunks[0]) return chunks[0].body;
      if (row.status === 'failed' || row.dead) throw failed(id);
      if (row.status === 'done') {
        const end: SnapshotChunkAnswer = { end: true, chunk_count: row.chunk_count, row_count: Number(row.row_count) };
        return JSON.stringify(end);
      }
      if (local) await this.#wait(local);
      else await new Promise((resolve) => setTimeout(resolve, this.#limits.pollMs));
    }
  }

  async drop(who: Pusher, id: string): Promise<void> {
    if (!isUuid(id)) return;
    if (this.#local.get(id)?.scope === who.scope) this.#markDropped(id);
    await this.#store.query('DELETE FROM sync_snapshots WHERE id = $1 AND scope = $2', [id, who.scope]);
  }

  #markDropped(id: string): void {
    const local = this.#local.get(id);
    if (local) local.dropped = true;
  }

  #wait(local: LocalBuild): Promise<void> {
    if (local.finished) return Promise.resolve();
    return new Promise<void>((resolve) => local.waiters.push(resolve));
  }

  #notify(local: LocalBuild): void {
    for (const resolve of local.waiters.splice(0)) resolve();
  }

  /** Frees snapshots left unread, whose build died, or that failed. */
  async #expire(): Promise<void> {
    await this.#store.query(
      `DELETE FROM sync_snapshots s WHERE s.status = 'failed' OR s.read_at < now() - make_interval(secs => $1)
          OR (s.status = 'building' AND (s.beat_at < now() - make_interval(secs => $2) OR (s.builder_pid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.builder_pid))))`,
      [this.#limits.idleMs / 1000, this.#limits.stallMs / 1000],
    );
  }
}

function notFound(id: string): SynclineError {
  return new SynclineError('not_found', 'no such snapshot (it expired, was dropped, or was freed after being left unread)', { snapshot_id: id.slice(0, 64) });
}

function failed(id: string): SynclineError {
  return new SynclineError('unavailable', 'the snapshot could not be built; start another', { snapshot_id: id });
}
