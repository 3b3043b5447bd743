import type { DecodedRow, RowBatch } from '../../protocol/batch.js';
import { SynclineError } from '../../protocol/errors.js';
import { quoteIdent } from '../identifiers.js';
import { sqlState, type Queryable } from '../store/store.js';
import { fromTextArrayElement, OVERFLOW, textArrayParam, toColumnText, toStoredJson, type PgType, type StoredJson } from '../type-mapping.js';
import { coalesceRows } from './coalesce.js';
import { copyFreshRows } from './mirror-copy.js';
import { isDigestedType, KEY_DIGEST_COLUMN, keyDigestSql, MirrorColumns, type MirrorTarget } from './mirror-schema.js';

export interface BatchMeta {
  deviceId: string;
  epoch: string;
  batchId: string;
}

/** Key columns of the mirror with their types, in key order. */
function keyLayout(target: MirrorTarget): { column: string; type: PgType }[] {
  if (target.key.kind === 'rowid') return [{ column: MirrorColumns.rowid, type: 'bigint' }];
  return target.key.columns.map((name) => {
    const binding = target.bindings.get(name);
    if (!binding) throw new SynclineError('internal', `key column ${name} is not bound`, { table: target.table });
    return { column: binding.target_column, type: binding.pg_type };
  });
}

/**
 * The key of each row as the text PostgreSQL will compare, or undefined when a
 * key value cannot be held by its mirror column (SQLite allows 'abc' in an INT
 * key column); such rows are staged instead of materialized.
 */
function keyTexts(row: DecodedRow, layout: readonly { type: PgType }[]): string[] | undefined {
  const texts: string[] = [];
  for (let i = 0; i < layout.length; i++) {
    const text = toColumnText(row.pk[i] ?? null, layout[i]!.type);
    if (text === null || text === OVERFLOW) return undefined;
    texts.push(text);
  }
  return texts;
}

/** 0.0 and -0.0 are one key to PostgreSQL; everything else compares by its canonical text. */
function canonicalKeyText(text: string, type: PgType): string {
  return type === 'double precision' && text === '-0' ? '0' : text;
}

function identityText(texts: readonly string[], layout: readonly { type: PgType }[]): string {
  // Every key of a batch has the same width, so a single key needs no framing (and no array per row).
  if (texts.length === 1) return canonicalKeyText(texts[0]!, layout[0]!.type);
  return JSON.stringify(texts.map((t, i) => canonicalKeyText(t, layout[i]!.type)));
}

export interface MaterializeResult {
  /** Journal rows whose effect is now in the mirror (before coalescing). */
  applied: number;
  /** Rows whose key the mirror cannot hold; the caller stages them. */
  unkeyable: DecodedRow[];
}

/** A batch's rows made ready for its mirror (keyed, coalesced, planned) before any statement runs. */
export interface PreparedRows extends MaterializeResult {
  target: MirrorTarget;
  layout: { column: string; type: PgType }[];
  keys: Map<DecodedRow, string[]>;
  upserts: DecodedRow[];
  deletes: DecodedRow[];
  /** The mirror's columns for the upserts (undefined without upserts). */
  plan: ColumnPlan[] | undefined;
  meta: BatchMeta;
}

/**
 * Applies rows to the mirror with two statements whatever their number: one DELETE
 * and one INSERT ... ON CONFLICT DO UPDATE, each fed by text arrays through
 * unnest and cast in SQL. Rows are first coalesced per key (last change wins), so
 * no statement touches a row twice. `guarded` false: fresh rows go in by a plain
 * INSERT or COPY without insertOrUpsert's savepoint, and meeting a key the mirror
 * holds fails with a unique violation (the caller holds a savepoint of its own and
 * runs the rows again guarded).
 */
export async function materializeRows(tx: Queryable, target: MirrorTarget, batch: RowBatch, rows: readonly DecodedRow[], meta: BatchMeta, guarded = true): Promise<MaterializeResult> {
  const prepared = prepareRows(target, batch, rows, meta);
  await writePrepared(tx, prepared, guarded);
  return { applied: prepared.applied, unkeyable: prepared.unkeyable };
}

/** Keys, coalesces and plans a batch's rows; rows whose key the mirror cannot hold are left out (`unkeyable`). */
export function prepareRows(target: MirrorTarget, batch: RowBatch, rows: readonly DecodedRow[], meta: BatchMeta): PreparedRows {
  const layout = keyLayout(target);
  const keyed: DecodedRow[] = [];
  const unkeyable: DecodedRow[] = [];
  const keys = new Map<DecodedRow, string[]>();
  for (const row of rows) {
    const texts = keyTexts(row, layout);
    if (texts === undefined) {
      unkeyable.push(row);
      continue;
    }
    keys.set(row, texts);
    keyed.push(row);
  }
  const { upserts, deletes } = coalesceRows(keyed, (row) => identityText(keys.get(row)!, layout));
  const plan = upserts.length > 0 ? planColumns(target, batch) : undefined;
  return { target, layout, keys, upserts, deletes, plan, meta, applied: keyed.length, unkeyable };
}

/**
 * Rows a plain COPY can write: fresh rows only, nothing to delete, and a mirror
 * whose key is not a digest (computed in SQL, which COPY cannot run).
 */
export function copyable(prepared: PreparedRows): boolean {
  return prepared.deletes.length === 0 && prepared.upserts.length > 0 && !prepared.target.digestKey && prepared.upserts.every(isFreshRow);
}

/** Runs a prepared batch's statements: its deletes, then its upserts (or, unguarded or guarded by a savepoint, a plain write of fresh rows). */
export async function writePrepared(tx: Queryable, prepared: PreparedRows, guarded: boolean): Promise<void> {
  const { target, layout, keys, upserts, deletes, plan, meta } = prepared;
  if (deletes.length > 0) await deleteKeys(tx, target, layout, deletes.map((row) => keys.get(row)!), meta.deviceId);
  if (!plan) return;
  // The column arrays of the unnest statements; COPY renders its text straight from the rows instead.
  let columns: RowColumns | undefined;
  const values = () => (columns ??= rowColumns(plan, upserts, keys));
  const upsert = () => upsertRows(tx, target, layout, values(), meta, true);
  const insert = target.digestKey ? () => upsertRows(tx, target, layout, values(), meta, false) : () => copyFreshRows(tx, target.table, plan, upserts, keys, meta);
  if (!upserts.every(isFreshRow)) await upsert();
  else if (guarded) await insertOrUpsert(tx, insert, upsert);
  else await insert();
}

/** Inserted or snapshotted on the device: the mirror almost never holds the key yet. */
function isFreshRow(row: DecodedRow): boolean {
  return row.op === 'insert' || row.op === 'snapshot';
}

/**
 * A plain INSERT or COPY skips ON CONFLICT's per-row speculative insertion (about a
 * third of the statement's cost). Fresh rows can still meet a key the mirror holds
 * (an app's INSERT OR REPLACE journals an insert, a new epoch snapshots every row
 * again); the unique violation then undoes the write and the rows go in as an upsert.
 */
async function insertOrUpsert(tx: Queryable, insert: () => Promise<void>, upsert: () => Promise<void>): Promise<void> {
  await tx.query('SAVEPOINT syncline_fresh_rows');
  try {
    await insert();
  } catch (error) {
    if (sqlState(error) !== UNIQUE_VIOLATION) throw error;
    await tx.query('ROLLBACK TO SAVEPOINT syncline_fresh_rows');
    await upsert();
  }
  await tx.query('RELEASE SAVEPOINT syncline_fresh_rows');
}

export const UNIQUE_VIOLATION = '23505';

async function deleteKeys(tx: Queryable, target: MirrorTarget, layout: readonly { column: string; type: PgType }[], keys: readonly string[][], deviceId: string): Promise<void> {
  const aliases = layout.map((_, i) => `k${i}`);
  const params: unknown[] = layout.map((_, i) => keys.map((k) => k[i]!));
  const unnest = layout.map((k, i) => textArrayParam(`$${i + 1}`, k.type)).join(', ');
  const digested = (i: number) => target.digestKey && isDigestedType(layout[i]!.type);
  const match = layout.flatMap((k, i) => (digested(i) ? [] : [`m.${quoteIdent(k.column)} = ${fromTextArrayElement(`d.${aliases[i]}`, k.type)}`]));
  if (target.digestKey) {
    const parts = layout.flatMap((k, i) => (digested(i) ? [{ expr: fromTextArrayElement(`d.${aliases[i]}`, k.type), type: k.type }] : []));
    match.push(`m.${quoteIdent(KEY_DIGEST_COLUMN)} = ${keyDigestSql(parts)}`);
  }
  // In a coalesced mirror the same key belongs to many devices; a device deletes only its own row.
  if (target.coalesced) {
    params.push(deviceId);
    match.unshift(`m.${quoteIdent(MirrorColumns.deviceId)} = $${params.length}::uuid`);
  }
  await tx.query(`DELETE FROM ${quoteIdent(target.table)} AS m USING unnest(${unnest}) AS d(${aliases.join(', ')}) WHERE ${match.join(' AND ')}`, params);
}

export interface ColumnPlan {
  source: string;
  target: string;
  type: PgType;
  /** Position in the batch row, or -1 for the rowid key, which comes from pk. */
  index: number;
  /** Position in the key, or -1 when not a key column. */
  keyIndex: number;
}

function planColumns(target: MirrorTarget, batch: RowBatch): ColumnPlan[] {
  const keyPosition = new Map(target.key.kind === 'rowid' ? [] : target.key.columns.map((c, i) => [c, i] as const));
  const plan: ColumnPlan[] = target.key.kind === 'rowid' ? [{ source: 'rowid', target: MirrorColumns.rowid, type: 'bigint', index: -1, keyIndex: 0 }] : [];
  batch.schema.columns.forEach((column, index) => {
    if (target.ignored.has(column.name)) return;
    const binding = target.bindings.get(column.name);
    if (!binding) throw new SynclineError('internal', `column ${column.name} is not bound to the mirror`, { table: target.table, batch_id: batch.batch_id });
    plan.push({ source: column.name, target: binding.target_column, type: binding.pg_type, index, keyIndex: keyPosition.get(column.name) ?? -1 });
  });
  return plan;
}

/** The mirror's values of each row as text, column by column (key columns from pk), with the columns every row carries. */
export interface RowColumns {
  plan: ColumnPlan[];
  columns: (string | null)[][];
  seqs: string[];
  ops: string[];
  overflows: (string | null)[];
}

function rowColumns(plan: ColumnPlan[], rows: readonly DecodedRow[], keys: ReadonlyMap<DecodedRow, string[]>): RowColumns {
  const columns: (string | null)[][] = plan.map(() => new Array<string | null>(rows.length));
  const seqs = new Array<string>(rows.length);
  const ops = new Array<string>(rows.length);
  const overflows = new Array<string | null>(rows.length);
  const texts = new Array<string | null>(plan.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    overflows[r] = rowTexts(plan, row, keys.get(row)!, texts);
    for (let c = 0; c < plan.length; c++) columns[c]![r] = texts[c]!;
    seqs[r] = String(row.seq);
    ops[r] = row.op;
  }
  return { plan, columns, seqs, ops, overflows };
}

/**
 * Writes a row's mirror values as text into `texts`, in plan order (key columns
 * from pk, the identity deletes use too; they are known to fit), and returns the
 * JSON of the values no column can hold exactly (null when none). The caller's
 * array is reused row after row: no allocation per row on the bulk path.
 */
export function rowTexts(plan: readonly ColumnPlan[], row: DecodedRow, key: readonly string[], texts: (string | null)[]): string | null {
  const values = row.row!;
  let overflow: Record<string, StoredJson> | undefined;
  for (let c = 0; c < plan.length; c++) {
    const column = plan[c]!;
    if (column.keyIndex >= 0) {
      texts[c] = key[column.keyIndex]!;
      continue;
    }
    const value = values[column.index]!;
    const text = toColumnText(value, column.type);
    if (text === OVERFLOW) {
      overflow ??= {};
      overflow[column.source] = toStoredJson(value);
      texts[c] = null;
    } else {
      texts[c] = text;
    }
  }
  return overflow ? JSON.stringify(overflow) : null;
}

async function upsertRows(
  tx: Queryable,
  target: MirrorTarget,
  layout: readonly { column: string; type: PgType }[],
  values: RowColumns,
  meta: BatchMeta,
  upsert: boolean,
): Promise<void> {
  const { plan, columns, seqs, ops, overflows } = values;
  const n = plan.length;
  const aliases = plan.map((_, i) => `c${i}`);
  const unnest = [...plan.map((c, i) => textArrayParam(`$${i + 1}`, c.type)), `$${n + 1}::bigint[]`, `$${n + 2}::text[]`, `$${n + 3}::jsonb[]`].join(', ');
  const insertColumns = [...plan.map((c) => c.target), MirrorColumns.deviceId, MirrorColumns.epoch, MirrorColumns.seq, MirrorColumns.batchId, MirrorColumns.op, MirrorColumns.ingestedAt, MirrorColumns.overflow];
  const selectList = [
    ...plan.map((c, i) => fromTextArrayElement(`u.${aliases[i]}`, c.type)),
    `$${n + 4}::uuid`,
    `$${n + 5}::text`,
    'u.s',
    `$${n + 6}::uuid`,
    'u.o',
    'now()',
    'u.x',
  ];
  const digestParts = target.digestKey ? plan.flatMap((c, i) => (c.keyIndex >= 0 && isDigestedType(c.type) ? [{ keyIndex: c.keyIndex, expr: selectList[i]!, type: c.type }] : [])) : [];
  if (target.digestKey) {
    insertColumns.push(KEY_DIGEST_COLUMN);
    selectList.push(keyDigestSql(digestParts.sort((a, b) => a.keyIndex - b.keyIndex)));
  }
  const digested = new Set(digestParts.map((p) => layout[p.keyIndex]!.column));
  const conflict = [...(target.coalesced ? [MirrorColumns.deviceId] : []), ...layout.map((k) => k.column).filter((c) => !digested.has(c)), ...(target.digestKey ? [KEY_DIGEST_COLUMN] : [])];
  const keyColumns = new Set(conflict);
  const updates = insertColumns.filter((c) => !keyColumns.has(c)).map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`);
  const sql = `INSERT INTO ${quoteIdent(target.table)} (${insertColumns.map(quoteIdent).join(', ')})
SELECT ${selectList.join(', ')}
FROM unnest(${unnest}) AS u(${[...aliases, 's', 'o', 'x'].join(', ')})${upsert ? `\nON CONFLICT (${conflict.map(quoteIdent).join(', ')}) DO UPDATE SET ${updates.join(', ')}` : ''}`;
  await tx.query(sql, [...columns, seqs, ops, overflows, meta.deviceId, meta.epoch, meta.batchId]);
}
