import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import type { ChangeStream } from '../../src/device/change-stream/change-stream.js';
import type { ChangeEvent, RowValues } from '../../src/device/change-stream/change-stream-event.js';
import { quoteIdent } from '../../src/device/capture/sql-text.js';
import { keyColumnsOf, readTableShape } from '../../src/device/capture/table-shape.js';
import type { SqlValue } from '../../src/protocol/values.js';
import { finished, spawnScript } from '../support/processes.js';

/** Helpers shared by the change-stream integration tests. */

export const APP = fileURLToPath(new URL('../support/sqlite-app.ts', import.meta.url));

/** Runs the unmodified app (test/support/sqlite-app.ts) as its own process and waits for it. */
export async function app(dbPath: string, scenario: string, ...args: number[]): Promise<string> {
  const result = await finished(spawnScript(APP, [dbPath, scenario, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${scenario} failed: ${result.stderr}`);
  return result.stdout;
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs` (a bound, not a timing assertion). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Takes events from the stream's iterator until `done(events)` holds (bounded), then closes the stream. */
export async function collect(stream: ChangeStream, done: (events: ChangeEvent[]) => boolean, timeoutMs = 60_000): Promise<ChangeEvent[]> {
  const events: ChangeEvent[] = [];
  const timer = setTimeout(() => void stream.close(), timeoutMs);
  try {
    if (done(events)) return events;
    for await (const event of stream) {
      events.push(event);
      if (done(events)) {
        stream.ack(event.seq);
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    await stream.close();
  }
  assert.ok(done(events), `the stream ended after ${events.length} events without reaching the expected point`);
  return events;
}

function valueText(value: SqlValue): string {
  if (value instanceof Uint8Array) return `x${Buffer.from(value).toString('hex')}`;
  if (typeof value === 'bigint') return `i${value}`;
  if (typeof value === 'number') return `r${Object.is(value, -0) ? '-0' : value}`;
  return value === null ? 'null' : `t${value}`;
}

/** A stable text for a row object (key order of the table, storage classes kept). */
export function rowText(row: RowValues): string {
  return Object.entries(row)
    .map(([name, value]) => `${name}=${valueText(value)}`)
    .join('|');
}

/** The table as the stream would describe it: key text -> row text (read through the driver, on a read-only connection). */
export async function tableState(path: string, table: string): Promise<Map<string, string>> {
  const db = new BetterSqlite3Driver(new Database(path, { readonly: true }));
  try {
    const shape = (await readTableShape(db, table))!;
    const keyColumns = keyColumnsOf(shape)!;
    const select = [...keyColumns, ...shape.columns.map((c) => c.name)].map((c, i) => `${quoteIdent(c)} AS c${i}`).join(', ');
    const rows = (await db.all(`SELECT ${select} FROM ${quoteIdent(table)}`)).map((row) => Object.values(row) as SqlValue[]);
    const state = new Map<string, string>();
    for (const values of rows) {
      const key = Object.fromEntries(shape.key.columns.map((c, i) => [c, values[i]!]));
      const row = Object.fromEntries(shape.columns.map((c, i) => [c.name, values[keyColumns.length + i]!]));
      state.set(rowText(key), rowText(row));
    }
    return state;
  } finally {
    await db.close();
  }
}

/**
 * Rebuilds tables from events, strictly: bootstrap snapshots (seq = snapshotSeq)
 * and inserts only for absent keys, updates and deletes only for present ones (a
 * key change is a delete and an update at consecutive seqs). A gap or a duplicate
 * across the snapshot/live switch breaks one of these rules.
 */
export function replay(events: readonly ChangeEvent[], snapshotSeq?: number): Map<string, Map<string, string>> {
  const tables = new Map<string, Map<string, string>>();
  let previous: ChangeEvent | undefined;
  for (const e of events) {
    const state = tables.get(e.table) ?? new Map<string, string>();
    tables.set(e.table, state);
    const key = rowText(e.key);
    const present = state.has(key);
    const bootstrap = e.op === 'snapshot' && e.seq === snapshotSeq;
    const keyChange = e.op === 'update' && previous?.op === 'delete' && previous.table === e.table && previous.seq === e.seq - 1;
    if (bootstrap || e.op === 'insert') assert.ok(!present, `seq ${e.seq}: ${e.op} of a key already present: ${e.table} ${key}`);
    else if ((e.op === 'update' && !keyChange) || e.op === 'delete') assert.ok(present, `seq ${e.seq}: ${e.op} of an absent key: ${e.table} ${key}`);
    if (e.op === 'delete') state.delete(key);
    else state.set(key, rowText(e.after!));
    previous = e;
  }
  return tables;
}

export function assertInCommitOrder(events: readonly ChangeEvent[]): void {
  for (let i = 1; i < events.length; i++) {
    const a = events[i - 1]!;
    const b = events[i]!;
    assert.ok(b.seq > a.seq || (b.seq === a.seq && b.op === 'snapshot'), `event ${i} (seq ${b.seq}) follows seq ${a.seq}`);
  }
}
