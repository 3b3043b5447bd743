import Database from 'better-sqlite3';
import { decodeValue, encodeValue, sameValue, type SqlValue } from '../../src/protocol/values.js';
import { mirrorRows, type Lineage } from '../../test/support/replication-check.js';

export interface TableDiff {
  table: string;
  source_rows: number;
  mirror_rows: number;
  /** In the source, missing from the mirror. */
  lost: number;
  /** In the mirror, not in the source (a deleted row come back, or a key twice). */
  duplicated: number;
  /** Same key, some column differs. */
  wrong: number;
}

/** Compares one captured table with its mirror row by row and value by value, counting instead of failing. */
export async function diffTable(server: { url: string; adminToken: string }, dbPath: string, lineage: Lineage): Promise<TableDiff> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  db.defaultSafeIntegers(true);
  let source: Record<string, SqlValue>[];
  try {
    source = db.prepare(`SELECT * FROM "${lineage.source_table.replaceAll('"', '""')}"`).all() as Record<string, SqlValue>[];
  } finally {
    db.close();
  }
  const keyOf = (row: Record<string, unknown>, decode: boolean) => JSON.stringify(lineage.key_columns.map((k) => encodeValue(decode ? decodeValue(row[k]) : (row[k] as SqlValue))));
  const mirror = await mirrorRows(server, lineage.id);
  const mirrored = new Map<string, Record<string, unknown>>();
  let duplicated = 0;
  for (const row of mirror) {
    const key = keyOf(row, true);
    if (mirrored.has(key)) duplicated += 1;
    mirrored.set(key, row);
  }
  let lost = 0;
  let wrong = 0;
  const seen = new Set<string>();
  for (const row of source) {
    const key = keyOf(row, false);
    seen.add(key);
    const copy = mirrored.get(key);
    if (!copy) {
      lost += 1;
      continue;
    }
    const raw = (v: SqlValue) => (v instanceof Buffer ? new Uint8Array(v) : v);
    if (Object.entries(row).some(([column, value]) => !sameValue(decodeValue(copy[column] ?? null), raw(value)))) wrong += 1;
  }
  for (const key of mirrored.keys()) if (!seen.has(key)) duplicated += 1;
  return { table: lineage.source_table, source_rows: source.length, mirror_rows: mirror.length, lost, duplicated, wrong };
}
