import { quoteIdent } from '../identifiers.js';
import { copyText } from '../store/copy-text.js';
import type { Queryable } from '../store/store.js';
import type { BatchMeta, RowColumns } from './materialize.js';
import { MirrorColumns } from './mirror-schema.js';

/**
 * Writes fresh rows into a mirror with one COPY, whatever their number and however
 * many batches they come from (each part brings its own device, epoch and batch
 * id; all parts share one column plan, as one lineage's batches of one schema do).
 * Measured against the INSERT fed by unnest arrays it replaces for fresh rows
 * (README, "Bulk writes"): about a fifth less CPU in PostgreSQL and in the server.
 * No conflict handling: the caller runs it under a savepoint and upserts instead
 * on a unique violation. `_syncline_ingested_at` takes its default, now(), the
 * transaction's start as the INSERT sets it.
 */
export async function copyFreshRows(tx: Queryable, target: { table: string }, parts: readonly { values: RowColumns; meta: BatchMeta }[]): Promise<void> {
  if (parts.length === 0) return;
  const plan = parts[0]!.values.plan;
  const columns: (string | null)[][] = [...plan.map(() => []), [], [], [], [], [], []];
  let count = 0;
  for (const { values, meta } of parts) {
    const n = values.seqs.length;
    plan.forEach((c, i) => {
      const text = values.columns[i]!;
      // COPY reads bytea in its \x hex form; the column text is the bare hex.
      for (const t of text) columns[i]!.push(c.type === 'bytea' && t !== null ? `\\x${t}` : t);
    });
    const at = plan.length;
    for (let r = 0; r < n; r++) {
      columns[at]!.push(meta.deviceId);
      columns[at + 1]!.push(meta.epoch);
      columns[at + 2]!.push(values.seqs[r]!);
      columns[at + 3]!.push(meta.batchId);
      columns[at + 4]!.push(values.ops[r]!);
      columns[at + 5]!.push(values.overflows[r]!);
    }
    count += n;
  }
  const names = [...plan.map((c) => c.target), MirrorColumns.deviceId, MirrorColumns.epoch, MirrorColumns.seq, MirrorColumns.batchId, MirrorColumns.op, MirrorColumns.overflow];
  await tx.copyIn(`${quoteIdent(target.table)} (${names.map(quoteIdent).join(', ')})`, copyText(columns, count));
}
