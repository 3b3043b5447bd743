import { RESERVED_PREFIX } from '../../protocol/constants.js';
import type { SharedTable } from '../../protocol/shared-sync.js';
import { quoteIdent, quoteText } from '../capture/sql-text.js';
import { SharedTables } from './shared-schema.js';

/**
 * The guard of a table that only syncs down: BEFORE triggers that refuse local
 * writes, standing aside while Syncline applies remote changes. A guard, not
 * capture: two-way tables are captured by edge capture's triggers into the same
 * journal (twoway-journal.ts). Pure string building.
 *
 * The names use ':' where capture's use '_', so no table name makes a guard
 * collide with a capture trigger. Files from before the one journal used these
 * names for two-way capture triggers too (twoway-upgrade.ts drops those).
 */

export type GuardKind = 'ins' | 'upd' | 'del';
const KINDS: readonly GuardKind[] = ['ins', 'upd', 'del'];

const GUARD_PREFIX = `${RESERVED_PREFIX}sync:`;

export function guardTriggerName(table: string, kind: GuardKind): string {
  return `${GUARD_PREFIX}${table}:${kind}`;
}

/** Two-way sync's guards, which edge capture must leave alone. */
export function isGuardTriggerName(name: string): boolean {
  return name.startsWith(GUARD_PREFIX);
}

export function guardTriggerStatements(table: SharedTable): string[] {
  const name = quoteIdent(table.name);
  const refuse = `SELECT RAISE(ABORT, ${quoteText(`syncline: ${table.name} syncs down only; devices cannot change it`)})`;
  const create = (kind: GuardKind, event: string) =>
    `CREATE TRIGGER ${quoteIdent(guardTriggerName(table.name, kind))} BEFORE ${event} ON ${name} FOR EACH ROW WHEN NOT EXISTS (SELECT 1 FROM ${SharedTables.applying}) BEGIN ${refuse}; END`;
  return [create('ins', 'INSERT'), create('upd', 'UPDATE'), create('del', 'DELETE')];
}

export function dropGuardStatements(table: string): string[] {
  return KINDS.map((kind) => `DROP TRIGGER IF EXISTS ${quoteIdent(guardTriggerName(table, kind))}`);
}
