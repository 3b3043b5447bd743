import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { SharedSyncConfig } from '../../src/cloud/shared/declarations.js';
import type { CloudServer } from '../../src/cloud/server.js';
import type { Store } from '../../src/cloud/store/store.js';
import type { SharedSync, SharedSyncOptions } from '../../src/device/twoway/shared-sync.js';
import { ADMIN_TOKEN, openSharedDevice, serverRows, sharedTestConfig, startSharedServer } from './shared-fixtures.js';
import type { StoreContext } from './stores.js';
import { tempDir } from './temp.js';

/**
 * Helpers for the two-way sync scenario tests: one server and one temp dir per
 * suite, device tables read back the way serverRows renders PostgreSQL's, and
 * fetch wrappers that make a request fail the way a crash or a dead network would.
 */

export interface ScenarioSuite {
  readonly server: CloudServer;
  readonly dir: string;
  /** Opens (or reopens) device `name` of `user`; its file is `<dir>/<user>-<name>.db`. */
  device(user: string, name: string, options?: Partial<SharedSyncOptions>): Promise<SharedSync>;
  /** The path of device `name`'s file. */
  path(user: string, name: string): string;
}

/** Starts one server (and temp dir) for the suite; every device opened through it is closed after the suite. */
export function scenarioSuite(ctx: StoreContext, config: () => SharedSyncConfig = () => sharedTestConfig()): ScenarioSuite {
  let server: CloudServer | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;
  const open = new Set<SharedSync>();
  before(async () => {
    dir = tempDir('syncline-scenarios-');
    server = await startSharedServer(ctx.store, config());
  });
  after(async () => {
    for (const device of open) await device.close().catch(() => undefined);
    await server?.stop();
    dir?.remove();
  });
  return {
    get server() {
      if (!server) throw new Error('server not started yet');
      return server;
    },
    get dir() {
      if (!dir) throw new Error('dir not made yet');
      return dir.path;
    },
    async device(user, name, options = {}) {
      const device = await openSharedDevice(this.server, this.dir, user, name, options);
      open.add(device);
      const close = device.close.bind(device);
      // A device closed by the test is not closed again after the suite.
      device.close = async () => {
        open.delete(device);
        await close();
      };
      return device;
    },
    path(user, name) {
      return join(this.dir, `${user}-${name}.db`);
    },
  };
}

/** A value as serverRows renders PostgreSQL's: text, BLOB as lowercase hex, null as null. */
function asServerText(value: unknown): string | null {
  if (value === null) return null;
  if (Buffer.isBuffer(value)) return value.toString('hex');
  return String(value);
}

const byJson = (a: unknown[], b: unknown[]) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : JSON.stringify(a) > JSON.stringify(b) ? 1 : 0);

/** A device table's rows rendered like serverRows, sorted so both sides compare. */
export function deviceRowsText(device: SharedSync, table: string, columns: string[]): (string | null)[][] {
  const rows = device.db.prepare(`SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM "${table}"`).raw().all() as unknown[][];
  return rows.map((r) => r.map(asServerText)).sort(byJson);
}

/** PostgreSQL's rows of a shared table for a scope, sorted like deviceRowsText. */
export async function serverRowsText(store: Store, table: string, scope: string, columns: string[]): Promise<unknown[][]> {
  return (await serverRows(store, table, scope, columns)).sort(byJson);
}

/** A device table's rows exactly as SQLite holds them (bigint, number, string, Buffer), in key order. */
export function deviceRows(device: SharedSync, table: string, orderBy: string): unknown[][] {
  return device.db.prepare(`SELECT * FROM "${table}" ORDER BY ${orderBy}`).raw().all() as unknown[][];
}

export async function bundleCount(store: Store, scope: string): Promise<number> {
  const { rows } = await store.query<{ n: string }>('SELECT count(*)::text AS n FROM sync_bundles WHERE scope = $1', [scope]);
  return Number(rows[0]!.n);
}

/** Removes a device's SQLite file with its WAL and shared-memory files (an uninstall). */
export function removeDbFiles(path: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
}

/**
 * Waits (yielding to the event loop, no fixed sleep) until the wall clock is past
 * every write the device has pending, so the next write is stamped strictly later.
 */
export async function pastPendingWrites(device: SharedSync): Promise<void> {
  let latest = 0;
  for (const keys of (await device.pendingChanges()).values()) for (const { ms } of keys.values()) latest = Math.max(latest, Number(ms));
  while (Date.now() <= latest + 1) await new Promise((resolve) => setImmediate(resolve));
}

export type FailPoint = 'before' | 'after' | undefined;

/**
 * A fetch that fails like a dead network for the requests `when` picks:
 * `before` the request leaves, or `after` the server handled it (the answer is
 * lost, as when the device crashes before reading it).
 */
export function failingFetch(when: (url: URL, method: string) => FailPoint): typeof globalThis.fetch {
  return async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const point = when(url, init?.method ?? 'GET');
    if (point === 'before') throw new TypeError('fetch failed (simulated: connection lost before the request)');
    const response = await globalThis.fetch(input, init);
    if (point === 'after') {
      await response.arrayBuffer();
      throw new TypeError('fetch failed (simulated: connection lost before the answer)');
    }
    return response;
  };
}

/** A fetch that counts requests by `METHOD path-shape` (ids replaced by ':id'). */
export function countingFetch(): { fetch: typeof globalThis.fetch; counts: Map<string, number> } {
  const counts = new Map<string, number>();
  return {
    counts,
    fetch: async (input, init) => {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      const shape = `${init?.method ?? 'GET'} ${url.pathname.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, ':id').replace(/\/\d+$/, '/:n')}`;
      counts.set(shape, (counts.get(shape) ?? 0) + 1);
      return globalThis.fetch(input, init);
    },
  };
}

/** Commits a server-side write to a scope through the admin route. */
export async function adminBundle(server: CloudServer, scope: string, body: { source_bundle_id: string; rows: unknown[] }): Promise<{ status: number; answer: Record<string, unknown> }> {
  const response = await fetch(`${server.url}/v1/admin/shared/scopes/${encodeURIComponent(scope)}/bundles`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, answer: (await response.json()) as Record<string, unknown> };
}
