import { randomUUID } from 'node:crypto';
import { decodeValue } from '../../protocol/values.js';
import { SynclineError } from '../../protocol/errors.js';
import { SharedDefaults, type PushAnswer, type PushBegin, type ReceivedRowChange } from '../../protocol/shared-sync.js';
import { isUuid } from '../auth/devices.js';
import type { Store } from '../store/store.js';
import { commitBundle } from './commit-bundle.js';
import type { SharedSyncConfig } from './declarations.js';

/** Who is pushing: both parts come from the verified credential. */
export interface Pusher {
  scope: string;
  source: string;
}

interface SessionRow {
  id: string;
  source_bundle_id: string;
  base_seq: string;
  row_count: number;
}

/**
 * Pushes in three steps, each safe to repeat: begin (idempotent on the device's
 * source bundle id), upload chunks (idempotent per chunk index), commit. A device
 * that crashed anywhere resumes by beginning again with the same id: it learns
 * which chunks arrived, or that the bundle is already committed.
 */
export async function beginPush(store: Store, config: SharedSyncConfig, who: Pusher, begin: PushBegin): Promise<PushAnswer> {
  const committed = await committedBundle(store, who, begin.source_bundle_id);
  if (committed) return committed;
  if (begin.rows !== undefined) {
    if (begin.rows.length !== begin.row_count) {
      throw new SynclineError('invalid_batch', `row_count is ${begin.row_count} but ${begin.rows.length} rows came inline`, { source_bundle_id: begin.source_bundle_id });
    }
    return commitBundle(store, config, { ...who, sourceBundleId: begin.source_bundle_id, baseSeq: BigInt(begin.base_seq), rows: begin.rows });
  }
  await store.query(`DELETE FROM sync_push_sessions WHERE created_at < now() - make_interval(secs => $1)`, [SharedDefaults.sessionTtlMs / 1000]);
  await store.query(
    `INSERT INTO sync_push_sessions (id, scope, source, source_bundle_id, base_seq, row_count) VALUES ($1, $2, $3, $4, $5::bigint, $6)
     ON CONFLICT (scope, source, source_bundle_id) DO NOTHING`,
    [randomUUID(), who.scope, who.source, begin.source_bundle_id, begin.base_seq, begin.row_count],
  );
  const session = await sessionBy(store, who, 'source_bundle_id', begin.source_bundle_id);
  if (session.row_count !== begin.row_count || session.base_seq !== begin.base_seq) {
    throw new SynclineError('conflict', 'this source bundle id was begun with another row count or base', { source_bundle_id: begin.source_bundle_id });
  }
  return { status: 'open', session_id: session.id, chunks_received: await chunksReceived(store, session.id) };
}

export async function uploadChunk(store: Store, who: Pusher, sessionId: string, index: number, rows: readonly ReceivedRowChange[]): Promise<PushAnswer> {
  // Values are decoded at commit; a chunk that could never decode is refused now, before it is kept.
  rows.forEach((row, r) => [...row.key, ...(row.row ?? [])].forEach((value, v) => decodeValue(value, `rows[${r}].${v < row.key.length ? `key[${v}]` : `row[${v - row.key.length}]`}`)));
  const session = await sessionBy(store, who, 'id', sessionId);
  if (!Number.isInteger(index) || index < 0 || index > session.row_count) {
    throw new SynclineError('invalid_request', `chunk index ${index} is out of range`, { field: 'index', session_id: sessionId });
  }
  const { rows: stored } = await store.query<{ total: string | null }>(
    'SELECT sum(row_count)::text AS total FROM sync_push_chunks WHERE session_id = $1 AND chunk_index <> $2',
    [sessionId, index],
  );
  if (Number(stored[0]?.total ?? 0) + rows.length > session.row_count) {
    throw new SynclineError('invalid_batch', `the chunks carry more than the ${session.row_count} rows the push began with`, { session_id: sessionId, field: 'rows' });
  }
  await store.query('INSERT INTO sync_push_chunks (session_id, chunk_index, row_count, rows) VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING', [
    sessionId,
    index,
    rows.length,
    JSON.stringify(rows),
  ]);
  return { status: 'open', session_id: sessionId, chunks_received: await chunksReceived(store, sessionId) };
}

export async function commitPush(store: Store, config: SharedSyncConfig, who: Pusher, sessionId: string): Promise<PushAnswer> {
  const session = await sessionBy(store, who, 'id', sessionId);
  const committed = await committedBundle(store, who, session.source_bundle_id);
  if (committed) return committed;
  const { rows: chunks } = await store.query<{ rows: ReceivedRowChange[] }>('SELECT rows FROM sync_push_chunks WHERE session_id = $1 ORDER BY chunk_index', [sessionId]);
  const rows = chunks.flatMap((c) => c.rows);
  if (rows.length !== session.row_count) {
    throw new SynclineError('incomplete_upload', `${rows.length} of ${session.row_count} rows arrived; upload the missing chunks, then commit`, {
      session_id: sessionId,
      chunks_received: await chunksReceived(store, sessionId),
    });
  }
  return commitBundle(store, config, { ...who, sourceBundleId: session.source_bundle_id, baseSeq: BigInt(session.base_seq), rows, sessionId });
}

export async function abandonPush(store: Store, who: Pusher, sessionId: string): Promise<void> {
  await sessionBy(store, who, 'id', sessionId);
  await store.query('DELETE FROM sync_push_sessions WHERE id = $1', [sessionId]);
}

async function committedBundle(store: Store, who: Pusher, sourceBundleId: string): Promise<PushAnswer | undefined> {
  const { rows } = await store.query<{ bundle_seq: string }>(
    'SELECT bundle_seq::text AS bundle_seq FROM sync_bundles WHERE scope = $1 AND source = $2 AND source_bundle_id = $3',
    [who.scope, who.source, sourceBundleId],
  );
  return rows[0] ? { status: 'committed', bundle_seq: rows[0].bundle_seq, duplicate: true } : undefined;
}

/** A session of this scope and source; another device's session is as invisible as a missing one. */
async function sessionBy(store: Store, who: Pusher, by: 'id' | 'source_bundle_id', value: string): Promise<SessionRow> {
  if (by === 'id' && !isUuid(value)) throw new SynclineError('not_found', 'no such push session', { session_id: value.slice(0, 64) });
  const { rows } = await store.query<SessionRow>(
    `SELECT id, source_bundle_id, base_seq::text AS base_seq, row_count FROM sync_push_sessions WHERE ${by} = $1 AND scope = $2 AND source = $3`,
    [value, who.scope, who.source],
  );
  if (!rows[0]) throw new SynclineError('not_found', 'no such push session (it was committed, abandoned or expired)', { session_id: value.slice(0, 64) });
  return rows[0];
}

async function chunksReceived(store: Store, sessionId: string): Promise<number[]> {
  const { rows } = await store.query<{ chunk_index: number }>('SELECT chunk_index FROM sync_push_chunks WHERE session_id = $1 ORDER BY chunk_index', [sessionId]);
  return rows.map((r) => r.chunk_index);
}
