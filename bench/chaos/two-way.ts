import Database from 'better-sqlite3';
import pg from 'pg';
import { openStore } from '../../src/cloud/store/open-store.js';
import type { SharedAppResult } from './plan.js';

/** The two-way table's rows, id -> `body|n`, so one string comparison checks both columns. */
export type NoteRows = Map<string, string>;

const noteValue = (body: string | null, n: number | bigint | string | null) => `${body}|${n}`;

/** The `notes` rows of a device file (opened read-only; its agent keeps writing). */
export function deviceNotes(path: string): NoteRows {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT id, body, n FROM notes').all() as { id: string; body: string | null; n: number | null }[];
    return new Map(rows.map((r) => [r.id, noteValue(r.body, r.n)]));
  } catch (error) {
    // Before the app created the table.
    if (String(error).includes('no such table')) return new Map();
    throw error;
  } finally {
    db.close();
  }
}

const SERVER_NOTES = 'SELECT id, body, n FROM syncline_shared.notes WHERE _syncline_scope = $1';

/** The server's `notes` rows of one scope, from PostgreSQL (while the server runs). */
export async function postgresNotes(url: string, scope: string): Promise<NoteRows> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string; body: string | null; n: string | null }>(SERVER_NOTES, [scope]);
    return new Map(rows.map((r) => [r.id, noteValue(r.body, r.n)]));
  } finally {
    await client.end();
  }
}

/** The same from the stopped server's PGlite data directory. */
export async function pgliteNotes(dataDir: string, scope: string): Promise<NoteRows> {
  const store = await openStore({ dataDir, migrate: false });
  try {
    const { rows } = await store.query<{ id: string; body: string | null; n: string | null }>(SERVER_NOTES, [scope]);
    return new Map(rows.map((r) => [r.id, noteValue(r.body, r.n)]));
  } finally {
    await store.close();
  }
}

export const sameNotes = (a: NoteRows, b: NoteRows) => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

export interface TwoWayDiff {
  /** Keys whose final value the apps know (written by one app only) missing on the server. */
  lost: number;
  /** Rows on the server that should not be there: deleted by their only writer, or a key nobody wrote. */
  duplicated: number;
  /** Rows whose value differs from the one writer's last, or (keys all apps write) is no value any app wrote. */
  wrong: number;
  /** Rows in which a device file differs from the server, summed over devices. */
  diverged: number;
}

/**
 * Checks the server's rows against what the apps wrote, and every device against
 * the server. A value is `<app>:<counter>` with n = counter, so a row whose n does
 * not match its body is wrong too.
 */
export function diffTwoWay(apps: readonly SharedAppResult[], server: NoteRows, devices: readonly NoteRows[]): TwoWayDiff {
  const diff: TwoWayDiff = { lost: 0, duplicated: 0, wrong: 0, diverged: 0 };
  const owned = new Map<string, string | null>();
  const written = new Map<string, Set<string>>();
  for (const app of apps) {
    for (const [key, body] of Object.entries(app.owned)) owned.set(key, body);
    for (const [key, bodies] of Object.entries(app.contested)) for (const body of bodies) (written.get(key) ?? written.set(key, new Set()).get(key)!).add(body);
  }
  const valueOf = (body: string) => noteValue(body, Number(body.split(':').at(-1)));
  for (const [key, body] of owned) {
    const got = server.get(key);
    if (body === null) diff.duplicated += got === undefined ? 0 : 1;
    else if (got === undefined) diff.lost += 1;
    else if (got !== valueOf(body)) diff.wrong += 1;
  }
  for (const [key, got] of server) {
    if (owned.has(key)) continue;
    const bodies = written.get(key);
    if (!bodies) diff.duplicated += 1;
    else if (![...bodies].some((b) => valueOf(b) === got)) diff.wrong += 1;
  }
  for (const device of devices) {
    for (const key of new Set([...device.keys(), ...server.keys()])) if (device.get(key) !== server.get(key)) diff.diverged += 1;
  }
  return diff;
}
