import { RESERVED_PREFIX } from '../../protocol/constants.js';
import type { SharedTable } from '../../protocol/shared-sync.js';
import { quoteIdent, quotedList, quoteText } from '../capture/sql-text.js';
import { SharedTables } from './shared-schema.js';

/**
 * The SQL that captures a shared table: AFTER triggers that mark each written row
 * dirty (one entry per key, keeping the row as it was before the first write), or,
 * for a table that only syncs down, BEFORE triggers that refuse local writes. All
 * of them stand aside while Syncline applies remote changes. Pure string building.
 *
 * The names use ':' where edge capture's use '_', so no table name makes a shared
 * trigger collide with an edge one.
 */

export type SharedTriggerKind = 'ins' | 'upd' | 'del';
const KINDS: readonly SharedTriggerKind[] = ['ins', 'upd', 'del'];

const SHARED_TRIGGER_PREFIX = `${RESERVED_PREFIX}sync:`;

export function sharedTriggerName(table: string, kind: SharedTriggerKind): string {
  return `${SHARED_TRIGGER_PREFIX}${table}:${kind}`;
}

/** Two-way sync's triggers, which edge capture must leave alone. */
export function isSharedTriggerName(name: string): boolean {
  return name.startsWith(SHARED_TRIGGER_PREFIX);
}

const NOT_APPLYING = `NOT EXISTS (SELECT 1 FROM ${SharedTables.applying})`;
const NOW_MS = `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`;

function mark(table: SharedTable, key: string, base: string, where = ''): string {
  const values = `${quoteText(table.name)}, ${key}, ${base}, ${NOW_MS}`;
  const source = where ? `SELECT ${values} WHERE ${where}` : `VALUES (${values})`;
  return `INSERT INTO ${SharedTables.dirty} (tbl, key, base_row, wall_ms) ${source} ON CONFLICT (tbl, key) DO UPDATE SET wall_ms = excluded.wall_ms`;
}

export function sharedTriggerStatements(table: SharedTable): string[] {
  const name = quoteIdent(table.name);
  const columns = table.columns.map((c) => c.name);
  const create = (kind: SharedTriggerKind, timing: string, event: string, body: string) =>
    `CREATE TRIGGER ${quoteIdent(sharedTriggerName(table.name, kind))} ${timing} ${event} ON ${name} FOR EACH ROW WHEN ${NOT_APPLYING} BEGIN ${body}; END`;
  if (table.direction === 'down') {
    const refuse = `SELECT RAISE(ABORT, ${quoteText(`syncline: ${table.name} syncs down only; devices cannot change it`)})`;
    return [create('ins', 'BEFORE', 'INSERT', refuse), create('upd', 'BEFORE', 'UPDATE', refuse), create('del', 'BEFORE', 'DELETE', refuse)];
  }
  const newKey = quotedList('NEW.', table.key);
  const oldKey = quotedList('OLD.', table.key);
  const oldRow = quotedList('OLD.', columns);
  const sameKey = `(${oldKey}) IS (${newKey})`;
  return [
    create('ins', 'AFTER', 'INSERT', mark(table, newKey, 'NULL')),
    // A key change leaves the old key deleted and the new one written (from nothing, as far as sync knows).
    create('upd', 'AFTER', 'UPDATE', `${mark(table, oldKey, oldRow, `NOT ${sameKey}`)}; ${mark(table, newKey, `CASE WHEN ${sameKey} THEN ${oldRow} END`)}`),
    create('del', 'AFTER', 'DELETE', mark(table, oldKey, oldRow)),
  ];
}

export function dropSharedTriggerStatements(table: string): string[] {
  return KINDS.map((kind) => `DROP TRIGGER IF EXISTS ${quoteIdent(sharedTriggerName(table, kind))}`);
}

/** Marks every row a table holds dirty, as if just inserted: rows written before capture was installed get pushed. */
export function markAllDirtyStatement(table: SharedTable): string {
  return `INSERT INTO ${SharedTables.dirty} (tbl, key, base_row, wall_ms) SELECT ${quoteText(table.name)}, ${quotedList('s.', table.key)}, NULL, ${NOW_MS} FROM ${quoteIdent(table.name)} AS s WHERE true ON CONFLICT (tbl, key) DO NOTHING`;
}
