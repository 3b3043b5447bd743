import type { DecodedRow } from '../../protocol/batch.js';

/**
 * The net effect of a run of journal rows on a keyed table: for every key only its
 * last row (in seq order) counts. A last insert/update/snapshot becomes an upsert
 * (it carries the whole row, so earlier changes to that key do not matter); a last
 * delete becomes a delete. The two sets are disjoint, so they can be applied as
 * one DELETE and one INSERT ... ON CONFLICT without any ordering between them.
 */
export interface CoalescedRows {
  /** Last row per key whose last op writes the row, in seq order. */
  upserts: DecodedRow[];
  /** Last row per key whose last op is a delete, in seq order. */
  deletes: DecodedRow[];
}

/**
 * `identity` must map two keys to the same string exactly when the mirror treats
 * them as the same key (for example 0.0 and -0.0 in a double precision column).
 * Rows must be in seq order, as a validated batch is.
 */
export function coalesceRows(rows: readonly DecodedRow[], identity: (row: DecodedRow) => string): CoalescedRows {
  const last = new Map<string, DecodedRow>();
  for (const row of rows) {
    const id = identity(row);
    // delete-then-set keeps Map iteration in order of each key's last change
    last.delete(id);
    last.set(id, row);
  }
  const upserts: DecodedRow[] = [];
  const deletes: DecodedRow[] = [];
  for (const row of last.values()) (row.op === 'delete' ? deletes : upserts).push(row);
  return { upserts, deletes };
}
