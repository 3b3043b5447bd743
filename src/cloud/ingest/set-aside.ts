import type { DecodedRow, RowBatch } from '../../protocol/batch.js';
import { sqlState, type Queryable } from '../store/store.js';
import { materializeRows, type BatchMeta, type MaterializeResult } from './materialize.js';
import type { MirrorTarget } from './mirror-schema.js';

/**
 * Errors about the rows themselves: data the database refuses (class 22, a value
 * out of range), limits one row hits (class 54, a row or index entry too big),
 * constraints (class 23) and two rows seen as one key (class 21, a safety net
 * behind coalescing). Retrying will not change them, but they concern some rows,
 * not the table: the rows are tried again in smaller groups until the ones at
 * fault are found, and only those are set aside.
 */
const ROW_CLASSES = ['21', '22', '23', '54'];

export function isRowError(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && ROW_CLASSES.includes(state.slice(0, 2));
}

/**
 * Errors about the mirror rather than any row (class 42: a column or table an
 * operator dropped or renamed, a privilege revoked): every row would fail, so
 * the lineage pauses for an operator with its rows staged.
 */
export function isLineageError(error: unknown): boolean {
  return sqlState(error)?.startsWith('42') ?? false;
}

export const UNKEYABLE_REASON = 'a key value does not fit the type of its mirror key column';

export interface RejectedRow {
  row: DecodedRow;
  /** Why: the database's message, or UNKEYABLE_REASON. */
  detail: string;
}

export interface SetAsideResult {
  /** Journal rows whose effect is now in the mirror. */
  applied: number;
  /** Rows the mirror refused, each alone; the caller stages them as `row_rejected`. */
  rejected: RejectedRow[];
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Materializes rows, setting aside those the mirror refuses one by one while the
 * rest go in. The fast path is one attempt for all rows inside one savepoint (the
 * one the caller would need anyway to stage the rows if the mirror is broken).
 * When a row error undoes it, the rows are bisected in order, each half in its own
 * savepoint: a batch with one bad row costs about 2·log2(n) statements more,
 * and rows are still applied in seq order, so a refused row never overtakes or
 * undoes a later change of its key. Any other error undoes everything this call
 * did and propagates.
 */
export async function materializeSettingAside(tx: Queryable, target: MirrorTarget, batch: RowBatch, rows: readonly DecodedRow[], meta: BatchMeta): Promise<SetAsideResult> {
  const result: SetAsideResult = { applied: 0, rejected: [] };
  await tx.query('SAVEPOINT syncline_rows');
  try {
    try {
      collect(result, await materializeRows(tx, target, batch, rows, meta));
    } catch (error) {
      if (!isRowError(error)) throw error;
      await tx.query('ROLLBACK TO SAVEPOINT syncline_rows');
      await bisect(tx, target, batch, rows, meta, result, error);
    }
  } catch (error) {
    if (sqlState(error) !== undefined) await tx.query('ROLLBACK TO SAVEPOINT syncline_rows');
    throw error;
  }
  await tx.query('RELEASE SAVEPOINT syncline_rows');
  return result;
}

function collect(result: SetAsideResult, done: MaterializeResult): void {
  result.applied += done.applied;
  for (const row of done.unkeyable) result.rejected.push({ row, detail: UNKEYABLE_REASON });
}

/** One savepoint around one materialize call: undefined when it went in, else the row error that undid it. */
async function attempt(tx: Queryable, target: MirrorTarget, batch: RowBatch, rows: readonly DecodedRow[], meta: BatchMeta, result: SetAsideResult): Promise<unknown> {
  await tx.query('SAVEPOINT syncline_rows_part');
  try {
    const done = await materializeRows(tx, target, batch, rows, meta);
    await tx.query('RELEASE SAVEPOINT syncline_rows_part');
    collect(result, done);
    return undefined;
  } catch (error) {
    if (!isRowError(error)) throw error;
    await tx.query('ROLLBACK TO SAVEPOINT syncline_rows_part');
    await tx.query('RELEASE SAVEPOINT syncline_rows_part');
    return error;
  }
}

async function bisect(tx: Queryable, target: MirrorTarget, batch: RowBatch, rows: readonly DecodedRow[], meta: BatchMeta, result: SetAsideResult, error: unknown): Promise<void> {
  if (rows.length === 1) {
    result.rejected.push({ row: rows[0]!, detail: messageOf(error) });
    return;
  }
  const middle = Math.ceil(rows.length / 2);
  for (const half of [rows.slice(0, middle), rows.slice(middle)]) {
    const failure = await attempt(tx, target, batch, half, meta, result);
    if (failure !== undefined) await bisect(tx, target, batch, half, meta, result, failure);
  }
}
