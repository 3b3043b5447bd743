import type { DecodedRow } from '../../protocol/batch.js';
import type { Queryable } from '../store/store.js';
import { toStoredJson } from '../type-mapping.js';
import type { RejectedRow } from './set-aside.js';

/**
 * A `row_rejected` staged row is always the latest change of its key the cloud
 * has: when a later change of the same key arrives (applied, or refused in its
 * turn), the earlier refused row is dropped, since the mirror (or the newer
 * refused row) now speaks for that key. That is what makes a retry safe: trying
 * the refused rows again, in order, can never bring back a value the device has
 * since changed or a row it has since deleted.
 */

/** The key of a row as staged rows store it (edge_staged_rows.pk). */
export const storedKey = (row: DecodedRow): string => JSON.stringify(row.pk.map(toStoredJson));

/** Refused rows of one batch that no later row of the same batch supersedes. */
export function latestRejections(rows: readonly DecodedRow[], rejected: readonly RejectedRow[]): RejectedRow[] {
  // The usual batch has none, and keying every row costs a JSON text each (about 1 µs per row in the drain's profile).
  if (rejected.length === 0) return [];
  const lastSeq = new Map<string, number>();
  for (const row of rows) lastSeq.set(storedKey(row), Math.max(lastSeq.get(storedKey(row)) ?? -Infinity, row.seq));
  return rejected.filter((r) => lastSeq.get(storedKey(r.row)) === r.row.seq);
}

/** Drops the lineage's refused rows (staged before `beforeId`, when given) whose key is one of `keys`. */
export async function dropSupersededRejections(tx: Queryable, lineageId: string, keys: Iterable<string>, beforeId?: string): Promise<void> {
  const list = [...new Set(keys)];
  if (list.length === 0) return;
  await tx.query(
    `DELETE FROM edge_staged_rows WHERE lineage_id = $1 AND reason = 'row_rejected' AND id < $3::bigint
       AND pk IN (SELECT (k)::jsonb FROM unnest($2::text[]) AS k)`,
    [lineageId, list, beforeId ?? '9223372036854775807'],
  );
}
