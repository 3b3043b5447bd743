import { once } from 'node:events';
import type Database from 'better-sqlite3';
import type { ChangeEvent, ChangeOp, RowValues } from '../device/change-stream/change-stream-event.js';
import { ChangeStreamDefaults } from '../device/change-stream/change-stream-options.js';
import { SynclineError } from '../protocol/errors.js';
import { encodeValue, type SqlValue, type WireValue } from '../protocol/values.js';
import { createLogger } from './logger.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { untilShutdown } from './shutdown.js';

export const watchOptions = {
  db: { flag: 'db', env: 'SYNCLINE_DB', kind: 'string', required: true, description: 'the SQLite file to watch' },
  table: { flag: 'table', kind: 'string', description: 'only these tables, comma-separated (case-insensitive)' },
  ops: { flag: 'ops', kind: 'string', description: 'only these ops, comma-separated: insert,update,delete,snapshot' },
  snapshot: { flag: 'snapshot', kind: 'boolean', default: false, description: 'first print every current row (op snapshot), then the changes after it' },
  json: { flag: 'json', kind: 'boolean', default: false, description: 'one JSON object per line, values in the wire encoding' },
  checkpoint: { flag: 'checkpoint', kind: 'string', description: 'durable consumer name: a restart resumes after the last change printed' },
  from: { flag: 'from', kind: 'integer', description: 'start after this journal seq' },
  waitForTables: { flag: 'wait-for-tables', kind: 'boolean', default: false, description: 'accept --table names the file does not have yet and wait for the app to create them (default: refuse them)' },
  beforeImages: { flag: 'before-images', kind: 'boolean', default: false, description: 'also capture the old row of updates and deletes of the --table tables' },
  pollIntervalMs: { flag: 'poll-interval-ms', kind: 'integer', default: ChangeStreamDefaults.pollIntervalMs, description: 'how often to look for new changes' },
  help: { flag: 'help', kind: 'boolean', default: false, description: 'show this help' },
} satisfies OptionTable;

function list(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

function encodeRow(row: RowValues | undefined): Record<string, WireValue> | undefined {
  if (!row) return undefined;
  const out: Record<string, WireValue> = {};
  for (const [name, value] of Object.entries(row)) Object.defineProperty(out, name, { value: encodeValue(value), enumerable: true });
  return out;
}

/** A JSON line for pipes: values as on the wire (exact 64-bit integers, tagged REALs and blobs), `at` as ISO time. */
export function jsonLine(event: ChangeEvent): string {
  return JSON.stringify({
    seq: event.seq,
    op: event.op,
    table: event.table,
    key: encodeRow(event.key),
    before: encodeRow(event.before),
    after: encodeRow(event.after),
    origin: event.origin,
    at: new Date(event.at).toISOString(),
  });
}

function show(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Uint8Array) return `x'${Buffer.from(value.buffer, value.byteOffset, Math.min(value.byteLength, 16)).toString('hex')}${value.byteLength > 16 ? '…' : ''}'`;
  return String(value);
}

function showRow(row: RowValues): string {
  return Object.entries(row)
    .map(([name, value]) => `${name}=${show(value)}`)
    .join(' ');
}

/** One line for people: an update shows only the columns that changed when the old row is known. */
export function humanLine(event: ChangeEvent): string {
  const head = `#${event.seq} ${event.op.padEnd(8)} ${event.table} [${showRow(event.key)}]`;
  if (event.op === 'delete') return event.before ? `${head} was ${showRow(event.before)}` : head;
  if (event.op === 'update' && event.before && event.after) {
    const before = event.before;
    const changed = Object.entries(event.after).filter(([name, value]) => show(before[name] ?? null) !== show(value));
    return `${head} ${changed.map(([name, value]) => `${name}: ${show(before[name] ?? null)} -> ${show(value)}`).join(' ') || '(no column changed)'}`;
  }
  return event.after ? `${head} ${showRow(event.after)}` : head;
}

const SUMMARY = `Prints the row changes of a SQLite file as they commit (by any process), from its change journal.
The first watch of a file installs Syncline's capture in it: AFTER triggers on the watched tables and a
journal table (_syncline_*), and it switches the file to WAL mode (journal_mode=WAL, which stays).`;

/** Refuses --table names the file does not have (case-insensitive, as SQLite), unless told to wait for them. */
async function checkTablesExist(dbPath: string, tables: readonly string[]): Promise<void> {
  const { default: Sqlite } = await import('better-sqlite3');
  let db: Database.Database;
  try {
    db = new Sqlite(dbPath, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new SynclineError('capture_failed', `cannot open ${dbPath}: ${(error as Error).message}`, { field: 'db' });
  }
  try {
    const have = new Set((db.prepare("SELECT lower(name) AS name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name));
    const missing = tables.filter((t) => !have.has(t.toLowerCase()));
    if (missing.length > 0) {
      throw new SynclineError('invalid_config', `${dbPath} has no table ${missing.map((t) => JSON.stringify(t)).join(', ')}; check the name, or pass --wait-for-tables to wait for the app to create it`, { field: 'table' });
    }
  } finally {
    db.close();
  }
}

export async function runWatch(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    const usage = 'syncline watch --db FILE [--table T[,T]] [--wait-for-tables] [--ops OPS] [--snapshot] [--json] [--checkpoint NAME] [--from SEQ]';
    process.stdout.write(`${helpText(usage, SUMMARY, watchOptions)}\n`);
    return 0;
  }
  const { options } = parseCommand(watchOptions, argv);
  const tables = list(options.table);
  if (options.beforeImages && !tables) throw new SynclineError('invalid_config', '--before-images applies to the --table tables; name them', { field: 'before-images' });
  if (tables && !options.waitForTables) await checkTablesExist(options.db, tables);
  // The device engine (better-sqlite3) loads here, not at the top: `watch --help` answers without it.
  const { changes } = await import('../device/change-stream/change-stream.js');
  const stream = await changes({
    db: options.db,
    ...(tables ? { tables: tables.map((name) => ({ name, beforeImages: options.beforeImages })) } : {}),
    ...(options.ops === undefined ? {} : { ops: list(options.ops) as ChangeOp[] }),
    snapshot: options.snapshot,
    ...(options.checkpoint === undefined ? {} : { checkpoint: options.checkpoint }),
    ...(options.from === undefined ? {} : { from: options.from }),
    pollIntervalMs: options.pollIntervalMs,
    logger: createLogger(),
  });
  const shutdown = untilShutdown();
  shutdown.signal.addEventListener('abort', () => void stream.close(), { once: true });
  // A closed pipe (`| head`) ends the watch quietly; what was printed is acknowledged.
  process.stdout.on('error', () => void stream.close());
  const format = options.json ? jsonLine : humanLine;
  stream.on('change', async (event) => {
    if (!process.stdout.write(`${format(event)}\n`)) await once(process.stdout, 'drain');
  });
  const error = await stream.closed;
  if (error) throw error;
  return 0;
}
