import type { SharedTable, WireConflict } from '../../protocol/shared-sync.js';
import { encodeValue } from '../../protocol/values.js';
import { quoteIdent } from '../identifiers.js';
import { sqlState, type Queryable } from '../store/store.js';
import type { DecodedChange } from './decode-changes.js';
import { castSharedFromText, scopeColumn, sharedTableRef, sharedToText } from './shared-columns.js';
import { applyChanges } from './table-writes.js';

const q = quoteIdent;

const KIND_BY_STATE: Record<string, WireConflict['kind']> = { '23505': 'unique', '23514': 'check', '23502': 'not_null', '23503': 'foreign_key' };

interface PgErrorFields {
  message?: string;
  detail?: string;
  constraint?: string;
}

/**
 * Finds every row of a bundle that breaks a constraint, after the bundle as a
 * whole failed. Each change is applied alone under a savepoint (unique, check and
 * NOT NULL show up there); foreign keys stay deferred while rows go in, since a
 * bundle may carry a graph in any order, and are then checked with queries: the
 * parent of every written row, and the children left pointing at every deleted
 * one. Runs inside the commit's transaction and writes nothing in the end.
 */
export async function diagnoseConstraints(
  tx: Queryable,
  scope: string,
  source: string,
  changes: readonly DecodedChange[],
  seq: bigint,
  tables: readonly SharedTable[],
  original: unknown,
): Promise<WireConflict[]> {
  const conflicts: WireConflict[] = [];
  const applied: DecodedChange[] = [];
  await tx.query('SAVEPOINT diagnose_bundle');
  for (const change of changes) {
    await tx.query('SAVEPOINT diagnose_row');
    try {
      await applyChanges(tx, scope, [change], seq, source);
      await tx.query('RELEASE SAVEPOINT diagnose_row');
      applied.push(change);
    } catch (error) {
      await tx.query('ROLLBACK TO SAVEPOINT diagnose_row');
      const kind = KIND_BY_STATE[sqlState(error) ?? ''];
      if (!kind) throw error;
      conflicts.push(conflictOf(change, kind, error as PgErrorFields));
    }
  }
  conflicts.push(...(await missingParents(tx, scope, applied, tables)), ...(await orphanedChildren(tx, scope, applied, tables)));
  await tx.query('ROLLBACK TO SAVEPOINT diagnose_bundle');
  if (conflicts.length === 0) {
    // The rows pass one by one but not together (a race with another writer, say): report what PostgreSQL said.
    const fields = original as PgErrorFields;
    conflicts.push({ table: '', key: [], kind: KIND_BY_STATE[sqlState(original) ?? ''] ?? 'check', server_version: '0', ...(fields.constraint ? { constraint: fields.constraint } : {}), message: fields.detail ?? fields.message ?? 'constraint violation' });
  }
  return conflicts;
}

function conflictOf(change: DecodedChange, kind: WireConflict['kind'], error: PgErrorFields, message?: string): WireConflict {
  return {
    table: change.table.name,
    key: change.key.map(encodeValue),
    kind,
    server_version: '0',
    ...(error.constraint ? { constraint: error.constraint } : {}),
    message: message ?? error.detail ?? error.message ?? kind,
  };
}

/** Written rows whose referenced parent is not there once every row of the bundle is in. */
async function missingParents(tx: Queryable, scope: string, applied: readonly DecodedChange[], all: readonly SharedTable[]): Promise<WireConflict[]> {
  const byName = new Map(all.map((t) => [t.name, t]));
  const conflicts: WireConflict[] = [];
  const upserts = applied.filter((c) => c.op === 'upsert' && c.table.references.length > 0);
  for (const table of new Set(upserts.map((c) => c.table))) {
    const rows = upserts.filter((c) => c.table === table);
    for (const ref of table.references) {
      const positions = ref.columns.map((name) => table.columns.findIndex((c) => c.name === name));
      const candidates = rows.filter((c) => positions.every((p) => c.columnTexts![p] !== null));
      if (candidates.length === 0) continue;
      const parent = byName.get(ref.table)!;
      const match = parent.key
        .map((k, i) => `p.${q(k)} = ${castSharedFromText(`u.c${i}`, table.columns[positions[i]!]!.type)}`)
        .join(' AND ');
      const { rows: missing } = await tx.query<{ i: number }>(
        `SELECT u.i FROM unnest($2::int[], ${positions.map((_, i) => `$${i + 3}::text[]`).join(', ')}) AS u(i, ${positions.map((_, i) => `c${i}`).join(', ')})
          WHERE NOT EXISTS (SELECT 1 FROM ${sharedTableRef(parent)} p WHERE p.${q(scopeColumn(parent))} = $1 AND ${match})`,
        [scope, candidates.map((_, i) => i), ...positions.map((p) => candidates.map((c) => c.columnTexts![p]!))],
      );
      for (const { i } of missing) {
        conflicts.push(conflictOf(candidates[i]!, 'foreign_key', {}, `${table.name} (${ref.columns.join(', ')}) references a ${ref.table} row that does not exist in this scope`));
      }
    }
  }
  return conflicts;
}

/** Deleted rows that rows of another (or the same) table still reference. */
async function orphanedChildren(tx: Queryable, scope: string, applied: readonly DecodedChange[], all: readonly SharedTable[]): Promise<WireConflict[]> {
  const conflicts: WireConflict[] = [];
  const deletes = applied.filter((c) => c.op === 'delete');
  for (const parent of new Set(deletes.map((c) => c.table))) {
    const removed = deletes.filter((c) => c.table === parent);
    const keyTexts = parent.key.map((name, i) => removed.map((c) => sharedToText(c.key[i]!, parent.columns.find((col) => col.name === name)!)!));
    for (const child of all) {
      for (const ref of child.references.filter((r) => r.table === parent.name)) {
        const match = ref.columns
          .map((name, i) => `c.${q(name)} = ${castSharedFromText(`u.k${i}`, parent.columns.find((col) => col.name === parent.key[i])!.type)}`)
          .join(' AND ');
        const { rows: held } = await tx.query<{ i: number }>(
          `SELECT u.i FROM unnest($2::int[], ${parent.key.map((_, i) => `$${i + 3}::text[]`).join(', ')}) AS u(i, ${parent.key.map((_, i) => `k${i}`).join(', ')})
            WHERE EXISTS (SELECT 1 FROM ${sharedTableRef(child)} c WHERE c.${q(scopeColumn(child))} = $1 AND ${match})`,
          [scope, removed.map((_, i) => i), ...keyTexts],
        );
        for (const { i } of held) {
          conflicts.push(conflictOf(removed[i]!, 'foreign_key', {}, `${parent.name} row is still referenced by ${child.name} (${ref.columns.join(', ')})`));
        }
      }
    }
  }
  return conflicts;
}
