import { SynclineError } from '../../protocol/errors.js';
import type { SharedTable, WireConflict, ReceivedRowChange } from '../../protocol/shared-sync.js';
import { decodeValue, encodeValue, sameValue, type SqlValue } from '../../protocol/values.js';
import { hasControlCharacter, quotedForHumans } from '../identifiers.js';
import { pushes } from './declarations.js';
import { keyText, sharedToText } from './shared-columns.js';

/** One row change of a bundle, decoded and checked against its table's declaration. */
export interface DecodedChange {
  table: SharedTable;
  op: 'upsert' | 'delete';
  key: SqlValue[];
  keyText: string;
  /** Every declared column as the text PostgreSQL casts from; null for deletes. */
  columnTexts: (string | null)[] | null;
  /** The row as wire values (what pulls hand out); null for deletes. */
  wireRow: unknown[] | null;
  hlc: string;
  baseVersion: bigint | null;
}

export interface DecodedBundle {
  /** Coalesced per row (the last change of a key wins) and in apply order: deletes children-first, then upserts parents-first. */
  changes: DecodedChange[];
  /** Rows PostgreSQL cannot hold as declared (a TEXT in an INTEGER column, say): reported, never coerced. */
  invalid: WireConflict[];
}

/**
 * Decodes a pushed bundle. Protocol faults (unknown table, wrong widths, bad
 * encodings) refuse the whole request; values the declared column cannot hold
 * are conflicts of kind `invalid`, reported per row with the others.
 * `tables` is parent-first, as the config keeps them. A server-side write may
 * change tables of any direction; a device only those it pushes.
 */
export function decodeBundle(rows: readonly ReceivedRowChange[], tables: readonly SharedTable[], context: Record<string, unknown> = {}, serverWrite = false): DecodedBundle {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const latest = new Map<string, DecodedChange>();
  const invalid: WireConflict[] = [];
  rows.forEach((wire, index) => {
    const field = `rows[${index}]`;
    if (hasControlCharacter(wire.table)) {
      throw new SynclineError('hostile_identifier', `table name ${quotedForHumans(wire.table.slice(0, 80))} contains a control character`, { ...context, field, table: quotedForHumans(wire.table.slice(0, 80)) });
    }
    const table = byName.get(wire.table);
    if (!table) throw new SynclineError('unknown_table', `${JSON.stringify(wire.table.slice(0, 80))} is not a shared table`, { ...context, field, table: wire.table.slice(0, 80) });
    if (!serverWrite && !pushes(table.direction)) throw new SynclineError('forbidden', `${table.name} syncs ${table.direction}; devices cannot push it`, { ...context, field, table: table.name });
    if (wire.key.length !== table.key.length) {
      throw new SynclineError('row_shape_mismatch', `${table.name} has ${table.key.length} key columns, the change carries ${wire.key.length}`, { ...context, field, table: table.name });
    }
    const key = wire.key.map((v, i) => decodeValue(v, `${field}.key[${i}]`));
    const change: DecodedChange = { table, op: wire.op, key, keyText: keyText(key), columnTexts: null, wireRow: null, hlc: wire.hlc, baseVersion: wire.base_version === undefined ? null : BigInt(wire.base_version) };
    try {
      if (wire.op === 'upsert') {
        Object.assign(change, decodeRow(wire, table, key, field, context));
      } else {
        if (wire.row !== undefined) throw new SynclineError('invalid_batch', 'a delete carries no row', { ...context, field, table: table.name });
        // An upsert's key is checked with its row; a delete's key alone.
        table.key.forEach((name, i) => sharedToText(key[i]!, table.columns.find((c) => c.name === name)!));
      }
    } catch (error) {
      if (!(error instanceof SynclineError) || error.code !== 'invalid_value_encoding' || !('column' in error.context)) throw error;
      invalid.push({ table: table.name, key: key.map(encodeValue), kind: 'invalid', server_version: '0', message: error.message });
      return;
    }
    const id = `${table.name}\u0000${change.keyText}`;
    latest.delete(id);
    latest.set(id, change);
  });
  return { changes: applyOrder([...latest.values()], tables), invalid };
}

function decodeRow(wire: ReceivedRowChange, table: SharedTable, key: SqlValue[], field: string, context: Record<string, unknown>): Pick<DecodedChange, 'columnTexts' | 'wireRow'> {
  const raw = wire.row;
  if (raw === undefined) throw new SynclineError('invalid_batch', 'an upsert carries its row', { ...context, field, table: table.name });
  if (raw.length !== table.columns.length) {
    throw new SynclineError('row_shape_mismatch', `${table.name} has ${table.columns.length} columns, the row carries ${raw.length}`, { ...context, field, table: table.name });
  }
  const values = raw.map((v, i) => decodeValue(v, `${field}.row[${i}]`));
  table.key.forEach((name, i) => {
    const at = table.columns.findIndex((c) => c.name === name);
    if (!sameValue(values[at]!, key[i]!)) throw new SynclineError('invalid_batch', `the row's ${name} differs from its key`, { ...context, field, table: table.name });
  });
  return { columnTexts: values.map((v, i) => sharedToText(v, table.columns[i]!)), wireRow: values.map(encodeValue) };
}

function applyOrder(changes: DecodedChange[], tables: readonly SharedTable[]): DecodedChange[] {
  const rank = new Map(tables.map((t, i) => [t.name, i]));
  const deletes = changes.filter((c) => c.op === 'delete').sort((a, b) => rank.get(b.table.name)! - rank.get(a.table.name)!);
  const upserts = changes.filter((c) => c.op === 'upsert').sort((a, b) => rank.get(a.table.name)! - rank.get(b.table.name)!);
  return [...deletes, ...upserts];
}
