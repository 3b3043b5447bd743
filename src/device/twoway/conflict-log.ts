import type { WireConflict } from '../../protocol/shared-sync.js';
import { decodeValue, encodeValue, type SqlValue } from '../../protocol/values.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { SharedTables } from './shared-schema.js';

/** A resolved conflict as the app reads it back. Rows are in declared column order; null means absent (deleted). */
export interface ConflictRecord {
  id: number;
  table: string;
  key: SqlValue[];
  /** `version`: both sides changed the row; otherwise the constraint or check the local change broke on the server. */
  kind: WireConflict['kind'];
  /** The rule that decided: the table's policy, `custom`, or `rejected` for a change the server could not take. */
  policy: string;
  winner: 'local' | 'remote' | 'merged';
  local: SqlValue[] | null;
  remote: SqlValue[] | null;
  remoteVersion: string | null;
  /** The row that stands after the resolution. */
  result: SqlValue[] | null;
  message: string | null;
  resolvedAt: string;
}

export type NewConflict = Omit<ConflictRecord, 'id' | 'resolvedAt'>;

const toJson = (row: readonly SqlValue[] | null): string | null => (row ? JSON.stringify(row.map(encodeValue)) : null);
const fromJson = (text: string | null): SqlValue[] | null => (text === null ? null : (JSON.parse(text) as unknown[]).map((v) => decodeValue(v)));

export async function logConflict(db: SqliteQueryable, conflict: NewConflict): Promise<void> {
  await db.run(
    `INSERT INTO ${SharedTables.conflicts} (tbl, key, kind, policy, winner, local_row, remote_row, remote_version, result_row, message, resolved_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
    conflict.table,
    toJson(conflict.key),
    conflict.kind,
    conflict.policy,
    conflict.winner,
    toJson(conflict.local),
    toJson(conflict.remote),
    conflict.remoteVersion,
    toJson(conflict.result),
    conflict.message,
    new Date().toISOString(),
    ],
  );
}

type ConflictRow = {
  id: bigint;
  tbl: string;
  key: string;
  kind: WireConflict['kind'];
  policy: string;
  winner: ConflictRecord['winner'];
  local_row: string | null;
  remote_row: string | null;
  remote_version: string | null;
  result_row: string | null;
  message: string | null;
  resolved_at: string;
};

/** Conflicts in the order they were resolved, after `afterId` when given. */
export async function readConflicts(db: SqliteQueryable, afterId = 0): Promise<ConflictRecord[]> {
  const rows = (await db.all(`SELECT * FROM ${SharedTables.conflicts} WHERE id > ? ORDER BY id`, [afterId])) as ConflictRow[];
  return rows.map((r) => ({
    id: Number(r.id),
    table: r.tbl,
    key: fromJson(r.key)!,
    kind: r.kind,
    policy: r.policy,
    winner: r.winner,
    local: fromJson(r.local_row),
    remote: fromJson(r.remote_row),
    remoteVersion: r.remote_version,
    result: fromJson(r.result_row),
    message: r.message,
    resolvedAt: r.resolved_at,
  }));
}
