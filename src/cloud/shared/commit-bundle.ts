import { backoffDelay, sleep } from '../../protocol/backoff.js';
import { SynclineError } from '../../protocol/errors.js';
import { BUNDLES_CHANNEL, type BundleNotification, type WireConflict, type ReceivedRowChange } from '../../protocol/shared-sync.js';
import { encodeValue } from '../../protocol/values.js';
import { lostToConcurrency, sqlState, transactionWithRetry, type Queryable, type Store } from '../store/store.js';
import { APPLYING_SETTING } from './capture-sql.js';
import { diagnoseConstraints } from './constraint-diagnosis.js';
import { decodeBundle, type DecodedChange } from './decode-changes.js';
import type { SharedSyncConfig } from './declarations.js';
import { applyChanges, lockLiveRows, serverRowStates } from './table-writes.js';

export interface CommitRequest {
  scope: string;
  source: string;
  sourceBundleId: string;
  /** The newest bundle the device had applied; null for a server-side write, which overrides whatever is there. */
  baseSeq: bigint | null;
  rows: readonly ReceivedRowChange[];
  /** A push session to close in the same transaction. */
  sessionId?: string;
}

export type CommitOutcome = { status: 'committed'; bundle_seq: string; duplicate: boolean } | { status: 'conflict'; conflicts: WireConflict[] };

/**
 * Commits one bundle: every change of it in one PostgreSQL transaction, or none.
 *
 * The scope's row is locked first, so bundles of a scope commit one at a time and
 * bundle_seq has no gaps. A change conflicts when the row moved on since the
 * device's view: its server version is newer than the device's base and was
 * written by another source (or differs from an explicit base_version the device
 * resolved against). Every conflict is reported, with the server's row, and then
 * nothing is written; constraint violations are found row by row and reported the
 * same way instead of failing the request.
 */
export async function commitBundle(store: Store, config: SharedSyncConfig, request: CommitRequest): Promise<CommitOutcome> {
  const context = { scope: request.scope, source: request.source, source_bundle_id: request.sourceBundleId };
  const decoded = decodeBundle(request.rows, config.tables, context, request.baseSeq === null);
  return withRowsFree(() => transactionWithRetry(store, async (tx) => {
    // Syncline writes these rows itself: the capture triggers must not make a second bundle of them.
    await tx.query(`SELECT set_config('${APPLYING_SETTING}', 'on', true)`);
    const { head, floor } = await lockScope(tx, request.scope);
    await lockLiveRows(tx, request.scope, decoded.changes);
    const done = await tx.query<{ bundle_seq: string }>(
      'SELECT bundle_seq::text AS bundle_seq FROM sync_bundles WHERE scope = $1 AND source = $2 AND source_bundle_id = $3',
      [request.scope, request.source, request.sourceBundleId],
    );
    if (done.rows[0]) {
      await closeSession(tx, request.sessionId);
      return { status: 'committed', bundle_seq: done.rows[0].bundle_seq, duplicate: true };
    }
    if (request.baseSeq !== null && request.baseSeq < floor && decoded.changes.some((c) => c.baseVersion === null)) {
      throw new SynclineError('history_pruned', `bundles up to ${floor} were pruned; this device's base ${request.baseSeq} is older, so hydrate first`, { ...context, floor_seq: floor.toString() });
    }
    const conflicts = [...decoded.invalid, ...(await versionConflicts(tx, request, decoded.changes))];
    if (conflicts.length > 0) return { status: 'conflict', conflicts };
    const seq = head + 1n;
    await tx.query('SAVEPOINT apply_bundle');
    try {
      await applyChanges(tx, request.scope, decoded.changes, seq, request.source);
      // Deferred foreign keys are checked here, inside the savepoint, rather than at COMMIT where a violation could not be told row by row.
      await tx.query('SET CONSTRAINTS ALL IMMEDIATE');
    } catch (error) {
      if (!sqlState(error)?.startsWith('23')) throw error;
      await tx.query('ROLLBACK TO SAVEPOINT apply_bundle');
      return { status: 'conflict', conflicts: await diagnoseConstraints(tx, request.scope, request.source, decoded.changes, seq, config.tables, error) };
    }
    await recordBundle(tx, request, decoded.changes, seq);
    await prune(tx, request.scope, seq, floor, config.retention.scopes[request.scope] ?? config.retention.bundles);
    await closeSession(tx, request.sessionId);
    return { status: 'committed', bundle_seq: seq.toString(), duplicate: false };
  }));
}

/**
 * Runs a commit again while a backend transaction holds one of its rows (see
 * lockLiveRows), or when it lost a deadlock: backend transactions that lock rows
 * in different orders deadlock among themselves, and a push queued for the scope
 * row behind them is part of that cycle (it holds the tuple lock of the queue),
 * so it may be the victim several times in a row. After a short, growing,
 * jittered pause the backends have usually committed. Gives up after about ten
 * seconds with an answer the device retries.
 */
async function withRowsFree<T>(commit: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (let attempt = 0; ; attempt++) {
    try {
      return await commit();
    } catch (error) {
      if (sqlState(error) !== '55P03' && !lostToConcurrency(error)) throw error;
      if (Date.now() > deadline) throw new SynclineError('unavailable', 'rows of this bundle stay locked by another transaction; retry shortly', {});
      await sleep(5 + backoffDelay(attempt, 10, 200));
    }
  }
}

async function lockScope(tx: Queryable, scope: string): Promise<{ head: bigint; floor: bigint }> {
  await tx.query('INSERT INTO sync_scopes (scope) VALUES ($1) ON CONFLICT (scope) DO NOTHING', [scope]);
  const { rows } = await tx.query<{ head_seq: string; floor_seq: string }>('SELECT head_seq::text AS head_seq, floor_seq::text AS floor_seq FROM sync_scopes WHERE scope = $1 FOR UPDATE', [scope]);
  return { head: BigInt(rows[0]!.head_seq), floor: BigInt(rows[0]!.floor_seq) };
}

async function versionConflicts(tx: Queryable, request: CommitRequest, changes: readonly DecodedChange[]): Promise<WireConflict[]> {
  const checked = changes.filter((c) => c.baseVersion !== null || request.baseSeq !== null);
  const conflicts: WireConflict[] = [];
  for (const table of new Set(checked.map((c) => c.table))) {
    const ofTable = checked.filter((c) => c.table === table);
    const states = await serverRowStates(tx, request.scope, table, ofTable.map((c) => c.keyText));
    for (const change of ofTable) {
      const state = states.get(change.keyText);
      const version = state?.version ?? 0n;
      const moved = change.baseVersion !== null ? version !== change.baseVersion : version > request.baseSeq! && state!.source !== request.source;
      if (!moved) continue;
      conflicts.push({
        table: table.name,
        key: change.key.map(encodeValue),
        kind: 'version',
        ...(state?.row ? { server_row: state.row } : {}),
        server_version: version.toString(),
        ...(state ? { server_hlc: state.hlc } : {}),
        message: `${table.name} ${change.keyText} is at version ${version}, newer than this change's base ${change.baseVersion ?? request.baseSeq}`,
      });
    }
  }
  return conflicts;
}

async function recordBundle(tx: Queryable, request: CommitRequest, changes: readonly DecodedChange[], seq: bigint): Promise<void> {
  await tx.query('INSERT INTO sync_bundles (scope, bundle_seq, source, source_bundle_id, row_count) VALUES ($1, $2::bigint, $3, $4, $5)', [
    request.scope,
    seq.toString(),
    request.source,
    request.sourceBundleId,
    changes.length,
  ]);
  for (let start = 0; start < changes.length; start += 2000) {
    const part = changes.slice(start, start + 2000);
    await tx.query(
      `INSERT INTO sync_bundle_rows (scope, bundle_seq, ordinal, tbl, op, key, row, hlc)
       SELECT $1, $2::bigint, u.o, u.t, u.op::"char", u.k::jsonb, u.r::json, u.h
         FROM unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS u(o, t, op, k, r, h)`,
      [
        request.scope,
        seq.toString(),
        part.map((_, i) => start + i),
        part.map((c) => c.table.name),
        part.map((c) => (c.op === 'upsert' ? 'U' : 'D')),
        part.map((c) => c.keyText),
        part.map((c) => (c.wireRow ? JSON.stringify(c.wireRow) : null)),
        part.map((c) => c.hlc),
      ],
    );
  }
  await tx.query('UPDATE sync_scopes SET head_seq = $2::bigint WHERE scope = $1', [request.scope, seq.toString()]);
  // Delivered at commit, to every server process listening (this one included): the devices' wake-up.
  await tx.query('SELECT pg_notify($1, $2)', [BUNDLES_CHANNEL, JSON.stringify({ scope: request.scope, head_seq: seq.toString() } satisfies BundleNotification)]);
}

/**
 * Keeps the newest `keep` bundles of a scope. Tombstones at or below the new floor
 * go too: a push based on an older view is refused as history_pruned, so no
 * conflict check ever needs them again.
 */
async function prune(tx: Queryable, scope: string, head: bigint, floor: bigint, keep: number): Promise<void> {
  const newFloor = head - BigInt(keep);
  if (newFloor <= floor) return;
  await tx.query('DELETE FROM sync_bundle_rows WHERE scope = $1 AND bundle_seq <= $2::bigint', [scope, newFloor.toString()]);
  await tx.query('DELETE FROM sync_bundle_chunks WHERE scope = $1 AND bundle_seq <= $2::bigint', [scope, newFloor.toString()]);
  await tx.query('DELETE FROM sync_tombstones WHERE scope = $1 AND version <= $2::bigint', [scope, newFloor.toString()]);
  await tx.query('UPDATE sync_scopes SET floor_seq = $2::bigint WHERE scope = $1', [scope, newFloor.toString()]);
}

async function closeSession(tx: Queryable, sessionId: string | undefined): Promise<void> {
  if (sessionId) await tx.query('DELETE FROM sync_push_sessions WHERE id = $1', [sessionId]);
}
