import { compareHlc } from '../../protocol/hlc.js';
import type { ConflictPolicy, SharedTable, Tiebreak } from '../../protocol/shared-sync.js';
import { sameValue, type SqlValue } from '../../protocol/values.js';

/** One side of a conflict: what it did to the row, and when (its HLC stamp). */
export interface ChangeSide {
  op: 'upsert' | 'delete';
  /** The row after the change, in declared column order; null for a delete. */
  row: SqlValue[] | null;
  hlc: string;
}

/** A local change that met a remote change of the same row. */
export interface ConflictCase {
  table: Pick<SharedTable, 'name' | 'columns' | 'conflict' | 'tiebreak'>;
  key: SqlValue[];
  /** The row both sides started from (as last synced); null when it did not exist or is unknown. */
  base: SqlValue[] | null;
  local: ChangeSide;
  remote: ChangeSide & { version: string };
}

export type Resolution = { winner: 'remote' } | { winner: 'local' } | { winner: 'merged'; row: SqlValue[] };

/** An app's own rule; returning undefined leaves the case to the table's policy. */
export type ConflictResolver = (conflict: ConflictCase) => Resolution | undefined;

export interface Decision {
  resolution: Resolution;
  /** The rule that decided: the table's policy, or 'custom'. */
  policy: ConflictPolicy | 'custom';
}

/** Decides a conflict. Pure: the same case always gets the same answer on every device. */
export function resolveConflict(conflict: ConflictCase, custom?: ConflictResolver): Decision {
  const chosen = custom?.(conflict);
  if (chosen !== undefined) {
    if (chosen.winner === 'merged' && chosen.row.length !== conflict.table.columns.length) {
      throw new TypeError(`the resolver merged ${chosen.row.length} values for ${conflict.table.columns.length} columns of ${conflict.table.name}`);
    }
    return { resolution: chosen, policy: 'custom' };
  }
  const policy = conflict.table.conflict;
  // Both sides left the row the same (both deleted it, say): nothing conflicts in value, and the server's
  // row stands with nothing left to push, as merge_columns reports a merge equal to the remote row.
  if (sameOutcome(conflict.local.row, conflict.remote.row)) return { resolution: { winner: 'remote' }, policy };
  if (policy === 'merge_columns') return { resolution: mergeColumns(conflict), policy };
  return { resolution: { winner: tiebreakWinner(policy, conflict) }, policy };
}

function tiebreakWinner(rule: Tiebreak, conflict: ConflictCase): 'local' | 'remote' {
  switch (rule) {
    case 'server_wins':
      return 'remote';
    case 'client_wins':
      return 'local';
    case 'last_writer_wins':
      return compareHlc(conflict.local.hlc, conflict.remote.hlc) > 0 ? 'local' : 'remote';
  }
}

/**
 * Column-level merge: a column changed on one side only takes that side's value;
 * a column both sides changed to different values goes to the table's tiebreak.
 * A delete on either side has no columns to merge, so the tiebreak decides the row.
 */
function mergeColumns(conflict: ConflictCase): Resolution {
  const { local, remote, base } = conflict;
  const tiebreak = tiebreakWinner(conflict.table.tiebreak, conflict);
  if (local.row === null || remote.row === null) return { winner: tiebreak };
  const merged = local.row.map((mine, i) => {
    const theirs = remote.row![i]!;
    if (sameValue(mine, theirs)) return mine;
    const before = base?.[i];
    const mineChanged = before === undefined || !sameValue(mine, before);
    const theirsChanged = before === undefined || !sameValue(theirs, before);
    if (mineChanged && !theirsChanged) return mine;
    if (theirsChanged && !mineChanged) return theirs;
    return tiebreak === 'local' ? mine : theirs;
  });
  if (sameRow(merged, remote.row)) return { winner: 'remote' };
  if (sameRow(merged, local.row)) return { winner: 'local' };
  return { winner: 'merged', row: merged };
}

function sameOutcome(a: readonly SqlValue[] | null, b: readonly SqlValue[] | null): boolean {
  return a === null || b === null ? a === b : sameRow(a, b);
}

export function sameRow(a: readonly SqlValue[], b: readonly SqlValue[]): boolean {
  return a.length === b.length && a.every((value, i) => sameValue(value, b[i]!));
}
