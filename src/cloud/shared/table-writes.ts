import type { SharedTable } from '../../protocol/shared-sync.js';
import { encodeValue, type WireValue } from '../../protocol/values.js';
import { quoteIdent } from '../identifiers.js';
import type { Queryable } from '../store/store.js';
import type { DecodedChange } from './decode-changes.js';
import { MetaColumns as M, castSharedFromText, readSharedAsText, scopeColumn, sharedFromText, sharedTableRef } from './shared-columns.js';

/** Rows per statement: large enough to amortize the round trip, small enough for PGlite's parameter buffers. */
const SLICE = 2000;

const q = quoteIdent;

/** What the server holds for one key: the live row, or the tombstone of its delete. */
export interface ServerRowState {
  version: bigint;
  source: string;
  hlc: string;
  /** The live row as wire values; null when the key is deleted. */
  row: WireValue[] | null;
}

function slices<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += SLICE) out.push(items.slice(i, i + SLICE));
  return out;
}

export async function serverRowStates(tx: Queryable, scope: string, table: SharedTable, keys: readonly string[]): Promise<Map<string, ServerRowState>> {
  const states = new Map<string, ServerRowState>();
  const reads = table.columns.map((c, i) => `${readSharedAsText(`t.${q(c.name)}`, c.type)} AS c${i}`).join(', ');
  for (const part of slices(keys)) {
    const live = await tx.query<Record<string, string | null>>(
      `SELECT t.${q(M.key)} AS key, t.${q(M.version)}::text AS version, t.${q(M.source)} AS source, t.${q(M.hlc)} AS hlc, ${reads}
         FROM ${sharedTableRef(table)} t WHERE t.${q(scopeColumn(table))} = $1 AND t.${q(M.key)} = ANY($2::text[])`,
      [scope, part],
    );
    for (const r of live.rows) {
      const row = table.columns.map((c, i) => encodeValue(sharedFromText(r[`c${i}`] ?? null, c.type)));
      states.set(r.key!, { version: BigInt(r.version!), source: r.source!, hlc: r.hlc!, row });
    }
    const dead = await tx.query<{ key: string; version: string; source: string; hlc: string }>(
      'SELECT key, version::text AS version, source, hlc FROM sync_tombstones WHERE scope = $1 AND tbl = $2 AND key = ANY($3::text[])',
      [scope, table.name, part],
    );
    for (const r of dead.rows) if (!states.has(r.key)) states.set(r.key, { version: BigInt(r.version), source: r.source, hlc: r.hlc, row: null });
  }
  return states;
}

/**
 * Locks the live rows a bundle touches, after the scope row, without waiting
 * (NOWAIT). A backend transaction locks a row first and the scope second (its
 * capture trigger runs once the row is locked), so a push that waited for such a
 * row while holding the scope would deadlock with it; instead the lock attempt
 * fails with 55P03 and the caller backs off, releasing the scope to the backend.
 */
export async function lockLiveRows(tx: Queryable, scope: string, changes: readonly DecodedChange[]): Promise<void> {
  const byTable = new Map<SharedTable, string[]>();
  for (const change of changes) {
    if (!byTable.has(change.table)) byTable.set(change.table, []);
    byTable.get(change.table)!.push(change.keyText);
  }
  for (const table of [...byTable.keys()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const keys = [...new Set(byTable.get(table))].sort();
    for (const part of slices(keys)) {
      await tx.query(`SELECT 1 FROM ${sharedTableRef(table)} WHERE ${q(scopeColumn(table))} = $1 AND ${q(M.key)} = ANY($2::text[]) ORDER BY ${q(M.key)} FOR UPDATE NOWAIT`, [scope, part]);
    }
  }
}

/** Writes upserts of one table at version `seq`; a tombstone of an earlier delete of the key is cleared. */
async function upsertRows(tx: Queryable, scope: string, table: SharedTable, changes: readonly DecodedChange[], seq: bigint, source: string): Promise<void> {
  const cols = table.columns;
  const width = cols.length;
  const params = (i: number) => `$${i + 5}::text[]`;
  const sql = `INSERT INTO ${sharedTableRef(table)} (${q(scopeColumn(table))}, ${cols.map((c) => q(c.name)).join(', ')}, ${q(M.key)}, ${q(M.version)}, ${q(M.source)}, ${q(M.hlc)})
    SELECT $1, ${cols.map((c, i) => castSharedFromText(`u.c${i}`, c.type)).join(', ')}, u.k, $2::bigint, $3, u.h
      FROM unnest($4::text[], $5::text[], ${cols.map((_, i) => params(i + 1)).join(', ')}) AS u(k, h, ${cols.map((_, i) => `c${i}`).join(', ')})
    ON CONFLICT (${q(scopeColumn(table))}, ${q(M.key)}) DO UPDATE SET ${[...cols.map((c) => c.name), M.version, M.source, M.hlc].map((n) => `${q(n)} = EXCLUDED.${q(n)}`).join(', ')}`;
  for (const part of slices(changes)) {
    const columns: (string | null)[][] = Array.from({ length: width }, () => []);
    for (const change of part) change.columnTexts!.forEach((text, i) => columns[i]!.push(text));
    await tx.query(sql, [scope, seq.toString(), source, part.map((c) => c.keyText), part.map((c) => c.hlc), ...columns]);
    await tx.query('DELETE FROM sync_tombstones WHERE scope = $1 AND tbl = $2 AND key = ANY($3::text[])', [scope, table.name, part.map((c) => c.keyText)]);
  }
}

/** Deletes rows of one table and leaves tombstones at version `seq`. */
async function deleteRows(tx: Queryable, scope: string, table: SharedTable, changes: readonly DecodedChange[], seq: bigint, source: string): Promise<void> {
  for (const part of slices(changes)) {
    const keys = part.map((c) => c.keyText);
    await tx.query(`DELETE FROM ${sharedTableRef(table)} WHERE ${q(scopeColumn(table))} = $1 AND ${q(M.key)} = ANY($2::text[])`, [scope, keys]);
    await tx.query(
      `INSERT INTO sync_tombstones (scope, tbl, key, version, source, hlc)
       SELECT $1, $2, u.k, $3::bigint, $4, u.h FROM unnest($5::text[], $6::text[]) AS u(k, h)
       ON CONFLICT (scope, tbl, key) DO UPDATE SET version = EXCLUDED.version, source = EXCLUDED.source, hlc = EXCLUDED.hlc`,
      [scope, table.name, seq.toString(), source, keys, part.map((c) => c.hlc)],
    );
  }
}

/** Applies changes already in apply order, grouping consecutive changes of one table and op into one statement. */
export async function applyChanges(tx: Queryable, scope: string, changes: readonly DecodedChange[], seq: bigint, source: string): Promise<void> {
  let start = 0;
  while (start < changes.length) {
    const first = changes[start]!;
    let end = start + 1;
    while (end < changes.length && changes[end]!.table === first.table && changes[end]!.op === first.op) end++;
    const group = changes.slice(start, end);
    if (first.op === 'upsert') await upsertRows(tx, scope, first.table, group, seq, source);
    else await deleteRows(tx, scope, first.table, group, seq, source);
    start = end;
  }
}
