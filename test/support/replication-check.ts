import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Routes } from '../../src/protocol/constants.js';
import { decodeValue, encodeValue, sameValue, type SqlValue } from '../../src/protocol/values.js';

/**
 * Compares every row of a SQLite source table with its mirror, value by value and
 * storage class by storage class, reading the mirror through the admin API.
 */
export interface Lineage {
  id: string;
  device_id: string;
  source_table: string;
  key_kind: 'primary_key' | 'rowid';
  key_columns: string[];
  status: string;
  last_seq: number;
  rows_received: number;
  rows_applied: number;
  journal_epoch: string | null;
  mirror_table: string | null;
}

async function adminGet<T>(server: { url: string; adminToken: string }, path: string): Promise<T> {
  const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
  const body = (await response.json()) as T;
  assert.equal(response.status, 200, `GET ${path}: ${JSON.stringify(body)}`);
  return body;
}

export async function lineages(server: { url: string; adminToken: string }, deviceId?: string): Promise<Lineage[]> {
  const query = deviceId ? `?device_id=${encodeURIComponent(deviceId)}` : '';
  return (await adminGet<{ lineages: Lineage[] }>(server, `${Routes.lineages}${query}`)).lineages;
}

export async function mirrorRows(server: { url: string; adminToken: string }, lineageId: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  let after: string | null = null;
  do {
    const query = new URLSearchParams({ limit: '1000', ...(after ? { after } : {}) });
    const page: { rows: Record<string, unknown>[]; next: string | null } = await adminGet(server, `${Routes.mirrorRows.replace(':id', lineageId)}?${query}`);
    rows.push(...page.rows);
    after = page.next;
  } while (after);
  return rows;
}

function sourceRows(dbPath: string, table: string, rowid: boolean): Record<string, SqlValue>[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  db.defaultSafeIntegers(true);
  try {
    const quoted = `"${table.replaceAll('"', '""')}"`;
    return db.prepare(`SELECT ${rowid ? 'rowid AS _syncline_rowid, ' : ''}* FROM ${quoted}`).all() as Record<string, SqlValue>[];
  } finally {
    db.close();
  }
}

function toSql(value: unknown): SqlValue {
  return value instanceof Buffer ? new Uint8Array(value) : (value as SqlValue);
}

const describeValue = (v: SqlValue) => JSON.stringify(encodeValue(v));

/**
 * Asserts the mirror holds exactly the source table's rows; returns how many were
 * compared. `ignored` columns (an operator chose not to store them) must be absent.
 */
export async function assertMirrorMatches(server: { url: string; adminToken: string }, dbPath: string, lineage: Lineage, options: { ignored?: readonly string[] } = {}): Promise<number> {
  const ignored = new Set(options.ignored ?? []);
  const rowid = lineage.key_kind === 'rowid';
  const keyColumns = rowid ? ['_syncline_rowid'] : lineage.key_columns;
  const keyOf = (row: Record<string, unknown>, decode: boolean) =>
    JSON.stringify(keyColumns.map((k) => encodeValue(decode ? decodeValue(row[k]) : toSql(row[k]))));
  const source = sourceRows(dbPath, lineage.source_table, rowid);
  const mirror = await mirrorRows(server, lineage.id);
  const mirrored = new Map(mirror.map((row) => [keyOf(row, true), row]));
  assert.equal(mirror.length, source.length, `${lineage.source_table}: mirror has ${mirror.length} rows, source ${source.length}`);
  for (const row of source) {
    const key = keyOf(row, false);
    const copy = mirrored.get(key);
    assert.ok(copy, `${lineage.source_table}: row ${key} is missing from the mirror`);
    for (const [column, raw] of Object.entries(row)) {
      if (ignored.has(column)) {
        assert.ok(!Object.hasOwn(copy, column), `${lineage.source_table}: ignored column ${column} reached the mirror`);
        continue;
      }
      const expected = toSql(raw);
      const actual = decodeValue(copy[column] ?? null);
      assert.ok(sameValue(actual, expected), `${lineage.source_table} ${key}.${column}: expected ${describeValue(expected)}, mirror has ${describeValue(actual)}`);
    }
  }
  return source.length;
}

/** Waits (bounded) until `check` returns true; fails with `what` on timeout. */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
