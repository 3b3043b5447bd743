import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import { SharedDefaults, type SnapshotAnswer, type SnapshotChunk } from '../../protocol/shared-sync.js';
import { encodeValue } from '../../protocol/values.js';
import { quoteIdent } from '../identifiers.js';
import type { Queryable, Store } from '../store/store.js';
import { pulls, type SharedSyncConfig } from './declarations.js';
import type { Pusher } from './push-sessions.js';
import { MetaColumns as M, readSharedAsText, sharedFromText, sharedTableRef } from './shared-columns.js';

const q = quoteIdent;

/**
 * A frozen, chunked copy of a scope's shared tables for hydration. Every chunk is
 * read and written in one REPEATABLE READ transaction, together with the scope's
 * head, so the snapshot is exactly the state after bundle `snapshot_seq` whatever
 * commits meanwhile; chunks are then served as stored, any number of times, until
 * the device drops the snapshot or it expires.
 */
export async function createSnapshot(store: Store, config: SharedSyncConfig, who: Pusher, options: { chunkRows?: number; logger?: Logger } = {}): Promise<SnapshotAnswer> {
  const chunkRows = options.chunkRows ?? SharedDefaults.chunkRows * 4;
  await store.query(`DELETE FROM sync_snapshots WHERE created_at < now() - make_interval(secs => $1)`, [SharedDefaults.sessionTtlMs / 1000]);
  const id = randomUUID();
  return store.transaction(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    const { rows } = await tx.query<{ head_seq: string }>('SELECT head_seq::text AS head_seq FROM sync_scopes WHERE scope = $1', [who.scope]);
    const seq = rows[0]?.head_seq ?? '0';
    await tx.query('INSERT INTO sync_snapshots (id, scope, source, snapshot_seq, chunk_count, row_count) VALUES ($1, $2, $3, $4::bigint, 0, 0)', [id, who.scope, who.source, seq]);
    let chunkCount = 0;
    let rowCount = 0;
    for (const table of config.tables.filter((t) => pulls(t.direction))) {
      for await (const chunk of tableChunks(tx, who.scope, table, chunkRows)) {
        await tx.query('INSERT INTO sync_snapshot_chunks (snapshot_id, chunk_index, body) VALUES ($1, $2, $3)', [id, chunkCount, JSON.stringify(chunk)]);
        chunkCount += 1;
        rowCount += chunk.rows.length;
        options.logger?.debug({ scope: who.scope, table: table.name, chunks: chunkCount, rows: rowCount }, 'snapshot progress');
      }
    }
    await tx.query('UPDATE sync_snapshots SET chunk_count = $2, row_count = $3 WHERE id = $1', [id, chunkCount, rowCount]);
    return { snapshot_id: id, snapshot_seq: seq, chunk_count: chunkCount, row_count: rowCount };
  });
}

async function* tableChunks(tx: Queryable, scope: string, table: SharedSyncConfig['tables'][number], chunkRows: number): AsyncGenerator<SnapshotChunk> {
  const reads = table.columns.map((c, i) => `${readSharedAsText(q(c.name), c.type)} AS c${i}`).join(', ');
  let after = '';
  for (;;) {
    const { rows } = await tx.query<Record<string, string | null>>(
      `SELECT ${q(M.key)} AS k, ${q(M.version)}::text AS v, ${q(M.hlc)} AS h, ${reads}
         FROM ${sharedTableRef(table.name)} WHERE ${q(M.scope)} = $1 AND ${q(M.key)} > $2 ORDER BY ${q(M.key)} LIMIT $3`,
      [scope, after, chunkRows],
    );
    if (rows.length === 0) return;
    yield {
      table: table.name,
      columns: table.columns.map((c) => c.name),
      rows: rows.map((r) => table.columns.map((c, i) => encodeValue(sharedFromText(r[`c${i}`] ?? null, c.type)))),
      versions: rows.map((r) => r.v!),
      hlcs: rows.map((r) => r.h!),
    };
    if (rows.length < chunkRows) return;
    after = rows.at(-1)!.k!;
  }
}

/** The stored JSON of one chunk, for the scope that made the snapshot only. */
export async function snapshotChunk(store: Store, who: Pusher, snapshotId: string, index: number): Promise<string> {
  const { rows } = await store.query<{ body: string }>(
    `SELECT c.body FROM sync_snapshot_chunks c JOIN sync_snapshots s ON s.id = c.snapshot_id
      WHERE s.id = $1 AND s.scope = $2 AND c.chunk_index = $3`,
    [checkedId(snapshotId), who.scope, index],
  );
  if (!rows[0]) throw new SynclineError('not_found', 'no such snapshot chunk (the snapshot expired or was dropped)', { snapshot_id: snapshotId, field: 'index' });
  return rows[0].body;
}

export async function dropSnapshot(store: Store, who: Pusher, snapshotId: string): Promise<void> {
  await store.query('DELETE FROM sync_snapshots WHERE id = $1 AND scope = $2', [checkedId(snapshotId), who.scope]);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkedId(id: string): string {
  if (!UUID.test(id)) throw new SynclineError('not_found', 'no such snapshot', { snapshot_id: id.slice(0, 64) });
  return id;
}
