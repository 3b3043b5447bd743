import { quoteIdent } from '../identifiers.js';
import type { Queryable } from '../store/store.js';
import { rowTexts } from './materialize.js';
import type { ColumnPlan, PreparedRows } from './materialize.js';
import { freshRowColumns, mayNeedEscape } from './mirror-copy.js';

/**
 * Batches of at most this many fresh rows go into a group's one multi-statement
 * query; a bigger one keeps its COPY, which parses rows cheaper than VALUES lists.
 */
export const INLINE_MAX_ROWS = 64;

/**
 * Writes many small batches' fresh rows, each batch into its own mirror (one
 * mirror per device and table), as one query of plain INSERT statements: one
 * round trip for the whole group where a COPY per batch took two (the COPY's
 * start, then its data) and node-pg's COPY stream machinery for five rows.
 * Batches for one mirror (coalesced) go in by one statement. Values
 * are the same texts COPY would read, as escape-string literals that each column's
 * input function reads as COPY does; `_syncline_ingested_at` takes its default.
 * Run in the group's transaction: a failing statement (a key the mirror holds)
 * aborts the query, and the caller rolls back to its savepoint.
 */
export async function insertInline(tx: Queryable, batches: readonly PreparedRows[]): Promise<void> {
  const statements: string[] = [];
  let into: { table: string; plan: readonly ColumnPlan[]; tuples: string[] } | undefined;
  for (const batch of batches) {
    const plan = batch.plan!;
    // Consecutive batches for one mirror (a project's coalesced mirror) share one statement.
    if (!into || into.table !== batch.target.table || !samePlan(into.plan, plan)) {
      if (into) statements.push(insertStatement(into));
      into = { table: batch.target.table, plan, tuples: [] };
    }
    into.tuples.push(...tuplesOf(batch, plan));
  }
  if (into) statements.push(insertStatement(into));
  await tx.exec(statements.join(';\n'));
}

function insertStatement({ table, plan, tuples }: { table: string; plan: readonly ColumnPlan[]; tuples: string[] }): string {
  return `INSERT INTO ${quoteIdent(table)} (${freshRowColumns(plan)}) VALUES ${tuples.join(', ')}`;
}

function tuplesOf({ upserts, keys, meta }: PreparedRows, plan: readonly ColumnPlan[]): string[] {
  const escaped = plan.map((c) => mayNeedEscape(c.type));
  const bytea = plan.map((c) => c.type === 'bytea');
  const texts = new Array<string | null>(plan.length);
  // Device, epoch and batch id are UUIDs or UUIDv7 text (validated): no quote or backslash in them.
  const afterValues = `, '${meta.deviceId}', '${meta.epoch}', `;
  const afterSeq = `, '${meta.batchId}', `;
  return upserts.map((row) => {
    const overflow = rowTexts(plan, row, keys.get(row)!, texts);
    let tuple = '(';
    for (let c = 0; c < texts.length; c++) {
      const text = texts[c]!;
      if (c > 0) tuple += ', ';
      if (text === null) tuple += 'NULL';
      // bytea's hex input form; the column text is the bare hex.
      else if (bytea[c]) tuple += `E'\\\\x${text}'`;
      else tuple += escaped[c] ? literal(text) : `'${text}'`;
    }
    return `${tuple}${afterValues}${row.seq}${afterSeq}'${row.op}', ${overflow === null ? 'NULL' : literal(overflow)})`;
  });
}

/** The same mirror columns in the same places of the batch rows: one VALUES list can hold both batches' rows. */
function samePlan(a: readonly ColumnPlan[], b: readonly ColumnPlan[]): boolean {
  return a === b || (a.length === b.length && a.every((c, i) => c.target === b[i]!.target && c.type === b[i]!.type && c.index === b[i]!.index && c.keyIndex === b[i]!.keyIndex));
}

/**
 * An escape-string literal (E'...'): it reads the same whatever the server's
 * standard_conforming_strings, with quotes doubled and backslashes escaped.
 */
function literal(text: string): string {
  return /['\\]/.test(text) ? `E'${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'` : `'${text}'`;
}
