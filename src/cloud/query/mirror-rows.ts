import { SynclineError } from '../../protocol/errors.js';
import { encodeValue, type WireValue } from '../../protocol/values.js';
import { quoteIdent } from '../identifiers.js';
import { MirrorColumns } from '../ingest/mirror-schema.js';
import type { Queryable } from '../store/store.js';
import { castFromText, fromColumnText, fromStoredJson, isPgType, readAsText, type PgType } from '../type-mapping.js';
import { getLineage } from './lineages.js';

export const MIRROR_PAGE_DEFAULT = 50;
export const MIRROR_PAGE_MAX = 1000;

export interface MirrorPage {
  /** Source columns in protocol wire encoding, plus `_syncline_*` metadata. */
  rows: Record<string, WireValue | string | number>[];
  /** Pass as `after` for the next page; null on the last page. */
  next: string | null;
}

interface Column {
  source: string;
  target: string;
  type: PgType;
}

function badRequest(field: string, message: string): SynclineError {
  return new SynclineError('invalid_request', message, { field });
}

export function parseLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return MIRROR_PAGE_DEFAULT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MIRROR_PAGE_MAX) throw badRequest('limit', `limit is an integer from 1 to ${MIRROR_PAGE_MAX}`);
  return n;
}

/** The cursor is the last row's key, as the text of each key column, base64url JSON. */
export function encodeCursor(keyTexts: readonly string[]): string {
  return Buffer.from(JSON.stringify(keyTexts), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string, keyTypes: readonly PgType[]): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw badRequest('after', 'after is not a cursor returned by this API');
  }
  if (!Array.isArray(parsed) || parsed.length !== keyTypes.length || !parsed.every((p) => typeof p === 'string')) {
    throw badRequest('after', 'after is not a cursor for this lineage');
  }
  const texts = parsed as string[];
  // Casting a malformed value in SQL would be a server error; refuse it here instead.
  texts.forEach((text, i) => {
    try {
      fromColumnText(text, keyTypes[i]!);
    } catch {
      throw badRequest('after', 'after is not a cursor for this lineage');
    }
  });
  return texts;
}

async function mirrorColumns(db: Queryable, lineageId: string, table: string): Promise<Column[]> {
  const { rows } = await db.query<{ source_column: string; target_column: string; pg_type: string }>(
    `SELECT b.source_column, b.target_column, b.pg_type FROM edge_column_bindings b
     JOIN pg_attribute a ON a.attrelid = to_regclass($2)::oid AND a.attname = b.target_column AND NOT a.attisdropped
     WHERE b.lineage_id = $1 ORDER BY a.attnum`,
    [lineageId, quoteIdent(table)],
  );
  return rows.map((r) => {
    if (!isPgType(r.pg_type)) throw new SynclineError('internal', `unknown mirror column type ${r.pg_type}`, { lineage_id: lineageId });
    return { source: r.source_column, target: r.target_column, type: r.pg_type };
  });
}

interface RawRow {
  [alias: string]: string | null | Date;
}

/**
 * One page of a lineage's mirror, in key order (keyset pagination: stable while
 * rows change, no OFFSET scans). Values come back exactly as the device sent them,
 * overflowed ones rebuilt from `_syncline_overflow`.
 */
export async function readMirrorRows(db: Queryable, lineageId: string, options: { limit?: number; after?: string } = {}): Promise<MirrorPage> {
  const lineage = await getLineage(db, lineageId);
  if (lineage.mirror_table === null) return { rows: [], next: null };
  const limit = options.limit ?? MIRROR_PAGE_DEFAULT;
  const columns = await mirrorColumns(db, lineage.id, lineage.mirror_table);
  const byName = new Map(columns.map((c) => [c.source, c]));
  const key: { target: string; type: PgType }[] =
    lineage.key_kind === 'rowid'
      ? [{ target: MirrorColumns.rowid, type: 'bigint' }]
      : lineage.key_columns.map((name) => {
          const column = byName.get(name);
          if (!column) throw new SynclineError('internal', `key column ${name} is not bound`, { lineage_id: lineage.id });
          return column;
        });

  const select = [
    ...key.map((k, i) => `${readAsText(quoteIdent(k.target), k.type)} AS k${i}`),
    ...columns.map((c, i) => `${readAsText(quoteIdent(c.target), c.type)} AS v${i}`),
    `${quoteIdent(MirrorColumns.seq)}::text AS s`,
    `${quoteIdent(MirrorColumns.op)} AS o`,
    `${quoteIdent(MirrorColumns.epoch)} AS e`,
    `${quoteIdent(MirrorColumns.batchId)}::text AS b`,
    `${quoteIdent(MirrorColumns.deviceId)}::text AS d`,
    `${quoteIdent(MirrorColumns.ingestedAt)} AS t`,
    `${quoteIdent(MirrorColumns.overflow)}::text AS x`,
  ];
  const keyList = key.map((k) => quoteIdent(k.target)).join(', ');
  // A coalesced mirror holds every device's rows; a lineage shows its own device's.
  const params: unknown[] = [lineage.device_id];
  let where = `WHERE ${quoteIdent(MirrorColumns.deviceId)} = $1::uuid`;
  if (options.after !== undefined) {
    const texts = decodeCursor(options.after, key.map((k) => k.type));
    params.push(...texts);
    where += ` AND (${keyList}) > (${key.map((k, i) => castFromText(`$${i + 2}`, k.type)).join(', ')})`;
  }
  params.push(limit + 1);
  const { rows } = await db.query<RawRow>(
    `SELECT ${select.join(', ')} FROM ${quoteIdent(lineage.mirror_table)} ${where} ORDER BY ${keyList} LIMIT $${params.length}`,
    params,
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    rows: page.map((raw) => toWireRow(raw, columns, lineage.key_kind === 'rowid')),
    next: rows.length > limit && last ? encodeCursor(key.map((_, i) => raw(last, `k${i}`)!)) : null,
  };
}

const raw = (row: RawRow, alias: string): string | null => row[alias] as string | null;

function toWireRow(row: RawRow, columns: readonly Column[], rowid: boolean): Record<string, WireValue | string | number> {
  const overflowText = raw(row, 'x');
  const overflow = overflowText === null ? {} : (JSON.parse(overflowText) as Record<string, unknown>);
  const entries: [string, WireValue | string | number][] = [];
  if (rowid) entries.push([MirrorColumns.rowid, encodeValue(fromColumnText(raw(row, 'k0'), 'bigint'))]);
  columns.forEach((c, i) => {
    const value = Object.hasOwn(overflow, c.source) ? fromStoredJson(overflow[c.source]) : fromColumnText(raw(row, `v${i}`), c.type);
    entries.push([c.source, encodeValue(value)]);
  });
  entries.push(
    [MirrorColumns.seq, Number(raw(row, 's'))],
    [MirrorColumns.op, raw(row, 'o')!],
    [MirrorColumns.epoch, raw(row, 'e')!],
    [MirrorColumns.batchId, raw(row, 'b')!],
    [MirrorColumns.deviceId, raw(row, 'd')!],
    [MirrorColumns.ingestedAt, (row.t as Date).toISOString()],
  );
  // fromEntries defines own properties, so a column named __proto__ stays a column.
  return Object.fromEntries(entries);
}
