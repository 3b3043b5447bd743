import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { authenticateDevice } from '../../src/cloud/auth/devices.js';
import { VerifiedTokens } from '../../src/cloud/auth/verified-tokens.js';
import { quoteIdent } from '../../src/cloud/identifiers.js';
import { CloudServer } from '../../src/cloud/server.js';
import { LISTEN_APPLICATION_NAME } from '../../src/cloud/store/pg-listener.js';
import type { Store } from '../../src/cloud/store/store.js';
import type { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { deleteDevice, newDevice } from '../support/cloud-fixtures.js';
import { clientEvent, connectAsDevice } from '../support/mqtt-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { ADMIN_TOKEN, openSharedDevice, sharedTestConfig } from '../support/shared-fixtures.js';
import { adminExec } from '../support/postgres.js';
import { openTestStore, postgresReachable, type TestStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * A server process listens on one connection for every channel (two-way
 * bundles, and device revocations for both its verified-token cache and its
 * embedded broker), made again when lost or when it cannot be made at start.
 */
const skip = postgresReachable ? false : 'PostgreSQL is not reachable';
const silent = pino({ level: process.env.DEBUG_LISTEN ? 'info' : 'silent' });

/** The backends of the store's database that listen (named by the store's listener). */
async function listenerPids(store: Store): Promise<number[]> {
  const { rows } = await store.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [LISTEN_APPLICATION_NAME]);
  return rows.map((row) => row.pid);
}

/** Resolves with whether the client's connection closes within `ms` of `act` (watched from before it, so a quick close is not missed). */
async function closesWithin(client: MqttClient, ms: number, act: () => Promise<unknown>): Promise<boolean> {
  const closed = clientEvent(client, 'close');
  await act();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([closed.then(() => true as const), timeout]);
  clearTimeout(timer);
  return result;
}

function startServer(store: Store): Promise<CloudServer> {
  // A check a minute apart: only a notification closes a revoked device's session within these tests.
  return CloudServer.start({ store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger: silent, mqtt: { port: 0, revocationCheckMs: 60_000 }, shared: sharedTestConfig() });
}

test('one listening connection for every channel; killed, it comes back, and a revocation, a deletion and a bundle commit after it are heard', { skip }, async (t) => {
  let db: TestStore | undefined;
  let server: CloudServer | undefined;
  let device: SharedSync | undefined;
  let cache: VerifiedTokens | undefined;
  const clients: MqttClient[] = [];
  const dir = tempDir('syncline-listen-one-');
  t.after(async () => {
    for (const client of clients) client.end(true);
    await device?.close();
    await cache?.stop();
    await server?.stop();
    await db?.close();
    dir.remove();
  });
  db = await openTestStore('postgres');
  const store = db.store;
  assert.deepEqual(await listenerPids(store), [], 'nothing listens before the server starts');
  server = await startServer(store);
  // One more listener in the process, on the same store: it shares the connection too.
  cache = await VerifiedTokens.start(store, silent);
  const [old, ...more] = await listenerPids(store);
  assert.ok(old !== undefined, 'the server listens');
  assert.deepEqual(more, [], 'on one connection: the bundles, the token cache and the broker share it');
  const { rows: listens } = await store.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'`);
  assert.deepEqual(listens, [{ n: 1 }], 'no other backend was left holding a LISTEN');

  const user = 'listen-one';
  device = await openSharedDevice(server, dir.path, user, 'stream');
  await device.sync();
  device.start({ pollMs: 600_000 });
  const revoked = await newDevice(store, 'revoked-after-reconnect');
  const deleted = await newDevice(store, 'deleted-after-reconnect');
  const revokedClient = await connectAsDevice(server.mqtt!.url, revoked, clients);

  const { rows } = await store.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [old]);
  assert.deepEqual(rows, [{ ok: true }]);
  await eventually('the server listens again, on one new connection', async () => {
    const pids = await listenerPids(store);
    return pids.length === 1 && pids[0] !== old;
  }, 15_000);

  // The broker hears a revocation stamped where its check would not look.
  const revoke = () => store.query(`UPDATE devices SET revoked_at = now() - interval '30 days' WHERE id = $1`, [revoked.device_id]);
  assert.ok(await closesWithin(revokedClient, 2_000, revoke), 'the session of a device revoked after the reconnect was not closed');

  // The cache remembers again, and hears a deletion: the token would otherwise stay trusted 30 s.
  await eventually('the cache remembers again', async () => {
    cache!.remember(deleted.token, await authenticateDevice(store, deleted.token), cache!.ticket());
    return cache!.get(deleted.token) !== undefined;
  }, 10_000);
  await deleteDevice(store, deleted.device_id);
  await eventually('the cache hears the deletion', () => cache!.get(deleted.token) === undefined, 2_000);

  await store.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, 'after', 'by the backend')`, [user]);
  const folders = () => device!.db.prepare('SELECT id FROM folders ORDER BY id').raw().all().flat();
  await eventually('the device is woken by a commit after the reconnect', () => JSON.stringify(folders()) === '["after"]', 15_000);

  // Once nothing listens, the connection goes with its last subscriber (the store stays open).
  await cache.stop();
  cache = undefined;
  assert.equal((await listenerPids(store)).length, 1, 'the server still listens');
  await device.close();
  device = undefined;
  await server.stop();
  server = undefined;
  await eventually('no connection listens once nothing does', async () => (await listenerPids(store)).length === 0, 5_000);
});

test('LISTEN that fails at start is tried again: the token cache and the broker listen once the database lets them', { skip }, async (t) => {
  let db: TestStore | undefined;
  let server: CloudServer | undefined;
  let cache: VerifiedTokens | undefined;
  const clients: MqttClient[] = [];
  let blocked = false;
  const allow = async (allowed: boolean) => {
    await adminExec(`ALTER DATABASE ${quoteIdent(new URL(db!.url!).pathname.slice(1))} ALLOW_CONNECTIONS ${allowed}`);
    blocked = !allowed;
  };
  t.after(async () => {
    if (blocked) await allow(true);
    for (const client of clients) client.end(true);
    await cache?.stop();
    await server?.stop();
    await db?.close();
  });
  db = await openTestStore('postgres');
  const store = db.store;
  const cached = await newDevice(store, 'cached');
  // The pool's connections are made now; none can be made while the database refuses them.
  await Promise.all(Array.from({ length: 10 }, () => store.query('SELECT pg_sleep(0.05)')));
  await allow(false);
  cache = await VerifiedTokens.start(store, silent);
  server = await startServer(store);
  assert.deepEqual(await listenerPids(store), [], 'nothing can listen yet');
  const ticket = cache.ticket();
  cache.remember(cached.token, await authenticateDevice(store, cached.token), ticket);
  assert.equal(cache.get(cached.token), undefined, 'not listening, the cache remembers nothing');
  await allow(true);

  await eventually('one connection listens once the database lets it', async () => (await listenerPids(store)).length === 1, 15_000);
  await eventually('the cache remembers again', async () => {
    cache!.remember(cached.token, await authenticateDevice(store, cached.token), cache!.ticket());
    return cache!.get(cached.token) !== undefined;
  }, 5_000);
  await store.query(`UPDATE devices SET revoked_at = now() WHERE id = $1`, [cached.device_id]);
  await eventually('the cache hears the revocation', () => cache!.get(cached.token) === undefined, 2_000);

  const device = await newDevice(store, 'broker');
  const client = await connectAsDevice(server.mqtt!.url, device, clients);
  const revoke = () => store.query(`UPDATE devices SET revoked_at = now() - interval '30 days' WHERE id = $1`, [device.device_id]);
  assert.ok(await closesWithin(client, 2_000, revoke), 'the broker that could not listen at start never heard the revocation');
});
