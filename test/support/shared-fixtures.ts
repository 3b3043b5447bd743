import { join } from 'node:path';
import pino from 'pino';
import { parseSharedConfig, type SharedSyncConfig } from '../../src/cloud/shared/declarations.js';
import { CloudServer } from '../../src/cloud/server.js';
import type { Store } from '../../src/cloud/store/store.js';
import { SharedSync, type SharedSyncOptions } from '../../src/device/twoway/shared-sync.js';
import { hs256Token } from './jwt.js';

export const JWT_SECRET = 'shared-sync-test-secret-0123456789abcdef';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/**
 * The shared tables the two-way sync tests use: a self-referencing folder tree,
 * notes keyed by UUID, tags with a composite key, per-column merged profiles, a
 * catalogue that only syncs down, readings that only sync up, BLOB keys, and two
 * tables that reference each other (a cycle).
 */
export const SHARED_TEST_TABLES = [
  {
    name: 'folders',
    direction: 'both',
    key: ['id'],
    columns: [
      { name: 'id', type: 'TEXT' },
      { name: 'name', type: 'TEXT' },
      { name: 'parent_id', type: 'TEXT' },
    ],
    references: [{ columns: ['parent_id'], table: 'folders' }],
  },
  {
    name: 'notes',
    direction: 'both',
    key: ['id'],
    conflict: 'last_writer_wins',
    columns: [
      { name: 'id', type: 'UUID' },
      { name: 'folder_id', type: 'TEXT' },
      { name: 'title', type: 'TEXT' },
      { name: 'stars', type: 'INTEGER' },
      { name: 'score', type: 'REAL' },
      { name: 'attachment', type: 'BLOB' },
    ],
    references: [{ columns: ['folder_id'], table: 'folders' }],
  },
  {
    name: 'tags',
    direction: 'both',
    key: ['note_id', 'tag'],
    conflict: 'client_wins',
    columns: [
      { name: 'note_id', type: 'UUID' },
      { name: 'tag', type: 'TEXT' },
      { name: 'color', type: 'TEXT' },
    ],
    references: [{ columns: ['note_id'], table: 'notes' }],
  },
  {
    name: 'profiles',
    direction: 'both',
    key: ['user_no'],
    conflict: 'merge_columns',
    tiebreak: 'server_wins',
    columns: [
      { name: 'user_no', type: 'INTEGER' },
      { name: 'display', type: 'TEXT' },
      { name: 'theme', type: 'TEXT' },
      { name: 'lang', type: 'TEXT' },
    ],
  },
  { name: 'catalog', direction: 'down', key: ['sku'], columns: [{ name: 'sku', type: 'TEXT' }, { name: 'price', type: 'REAL' }] },
  { name: 'readings', direction: 'up', key: ['id'], columns: [{ name: 'id', type: 'INTEGER' }, { name: 'value', type: 'REAL' }] },
  { name: 'blobs', direction: 'both', key: ['k'], columns: [{ name: 'k', type: 'BLOB' }, { name: 'v', type: 'BLOB' }] },
  {
    name: 'a_nodes',
    direction: 'both',
    key: ['id'],
    columns: [{ name: 'id', type: 'INTEGER' }, { name: 'b_id', type: 'INTEGER' }],
    references: [{ columns: ['b_id'], table: 'b_nodes' }],
  },
  {
    name: 'b_nodes',
    direction: 'both',
    key: ['id'],
    columns: [{ name: 'id', type: 'INTEGER' }, { name: 'a_id', type: 'INTEGER' }],
    references: [{ columns: ['a_id'], table: 'a_nodes' }],
  },
  {
    name: 'emails',
    direction: 'both',
    key: ['id'],
    columns: [{ name: 'id', type: 'INTEGER' }, { name: 'address', type: 'TEXT', nullable: false }],
  },
];

export function sharedTestConfig(overrides: { retention?: { bundles: number; scopes?: Record<string, number> }; tables?: unknown[] } = {}): SharedSyncConfig {
  return parseSharedConfig({
    auth: { hs256_secret: JWT_SECRET },
    retention: { bundles: 10_000, scopes: {}, ...overrides.retention },
    tables: overrides.tables ?? SHARED_TEST_TABLES,
  });
}

export async function startSharedServer(store: Store, config: SharedSyncConfig = sharedTestConfig()): Promise<CloudServer> {
  return CloudServer.start({ store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger: pino({ level: process.env.H12_LOG ?? 'silent' }), shared: config });
}

export function userToken(user: string, extra: Record<string, unknown> = {}): Promise<string> {
  return hs256Token(JWT_SECRET, { sub: user, ...extra });
}

/** A device of `user`: its own SQLite file in `dir`, named `name` (also its source id). */
export async function openSharedDevice(server: CloudServer, dir: string, user: string, name: string, options: Partial<SharedSyncOptions> = {}): Promise<SharedSync> {
  const token = await userToken(user);
  return SharedSync.open({ path: join(dir, `${user}-${name}.db`), serverUrl: server.url, token, source: name, ...options });
}

/** The server's rows of a shared table for one scope, in key order, as plain JS values (text for bigint/bytea). */
export async function serverRows(store: Store, table: string, scope: string, columns: string[]): Promise<unknown[][]> {
  // Aliased by position: two encode(...) columns would otherwise share one name and collapse into one value.
  const list = columns.map((c, i) => `${c === 'attachment' || c === 'k' || c === 'v' ? `encode("${c}", 'hex')` : `"${c}"::text`} AS c${i}`).join(', ');
  const { rows } = await store.query<Record<string, unknown>>(`SELECT ${list} FROM syncline_shared."${table}" WHERE _syncline_scope = $1 ORDER BY _syncline_key`, [scope]);
  return rows.map((r) => Object.values(r));
}
