import type { DecodedRow } from '../../protocol/batch.js';
import { quoteIdent } from '../identifiers.js';
import { copyField } from '../store/copy-text.js';
import type { Queryable } from '../store/store.js';
import type { PgType } from '../type-mapping.js';
import { rowTexts, type BatchMeta, type ColumnPlan } from './materialize.js';
import { MirrorColumns } from './mirror-schema.js';

/**
 * Writes a batch's fresh rows into a mirror with one COPY. Measured against the
 * INSERT fed by unnest arrays it replaces for fresh rows (README, "Bulk writes"):
 * about a fifth less CPU in PostgreSQL and in the server. Each row's line is
 * rendered straight from its decoded values (no column arrays in between: on a
 * 200k-row drain those, and the garbage they made, were a fifth of the server's
 * CPU), in parts that PostgreSQL parses while the next one is rendered. No
 * conflict handling: the caller runs it under a savepoint and upserts instead on
 * a unique violation. `_syncline_ingested_at` takes its default,
 * now(), the transaction's start as the INSERT sets it.
 */
export async function copyFreshRows(tx: Queryable, table: string, plan: readonly ColumnPlan[], rows: readonly DecodedRow[], keys: ReadonlyMap<DecodedRow, string[]>, meta: BatchMeta): Promise<void> {
  if (rows.length === 0) return;
  await tx.copyIn(`${quoteIdent(table)} (${freshRowColumns(plan)})`, () => copyLines(plan, rows, keys, meta));
}

/** The mirror columns a fresh row fills, in the order copyLines and inline-rows.ts write them (quoted). */
export function freshRowColumns(plan: readonly ColumnPlan[]): string {
  return [...plan.map((c) => c.target), MirrorColumns.deviceId, MirrorColumns.epoch, MirrorColumns.seq, MirrorColumns.batchId, MirrorColumns.op, MirrorColumns.overflow].map(quoteIdent).join(', ');
}

/** Rows per part of the COPY payload: PostgreSQL parses one part while the next is rendered. */
const ROWS_PER_PART = 512;

function* copyLines(plan: readonly ColumnPlan[], rows: readonly DecodedRow[], keys: ReadonlyMap<DecodedRow, string[]>, meta: BatchMeta): Generator<string> {
  const escaped = plan.map((c) => mayNeedEscape(c.type));
  const bytea = plan.map((c) => c.type === 'bytea');
  // Device, epoch and batch id are UUIDs or UUIDv7 text (validated), so they need no escaping.
  const afterValues = `\t${meta.deviceId}\t${meta.epoch}\t`;
  const afterSeq = `\t${meta.batchId}\t`;
  const texts = new Array<string | null>(plan.length);
  for (let from = 0; from < rows.length; from += ROWS_PER_PART) {
    const lines = new Array<string>(Math.min(ROWS_PER_PART, rows.length - from));
    for (let i = 0; i < lines.length; i++) {
      const row = rows[from + i]!;
      const overflow = rowTexts(plan, row, keys.get(row)!, texts);
      let line = '';
      for (let c = 0; c < plan.length; c++) {
        const text = texts[c]!;
        if (c > 0) line += '\t';
        // COPY reads bytea in its \x hex form (the backslash escaped in COPY's text); the column text is the bare hex.
        if (text === null) line += '\\N';
        else if (bytea[c]) line += `\\\\x${text}`;
        else line += escaped[c] ? copyField(text) : text;
      }
      lines[i] = `${line}${afterValues}${row.seq}${afterSeq}${row.op}\t${copyField(overflow)}`;
    }
    yield `${lines.join('\n')}\n`;
  }
}

/** Digits, signs, dots, exponents and hex never hold COPY's (or a string literal's) special characters; text and JSON may. */
export function mayNeedEscape(type: PgType): boolean {
  return type === 'text' || type === 'jsonb';
}
