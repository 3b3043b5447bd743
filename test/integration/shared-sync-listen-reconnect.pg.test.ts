import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import { LISTEN_APPLICATION_NAME } from '../../src/cloud/store/pg-listener.js';
import { BUNDLES_CHANNEL } from '../../src/protocol/shared-sync.js';
import type { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { eventually } from '../support/replication-check.js';
import { ADMIN_TOKEN, openSharedDevice, sharedTestConfig } from '../support/shared-fixtures.js';
import { openTestStore, postgresReachable, type TestStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * The server's LISTEN connection (the wake-ups of every device, on any process)
 * is killed by PostgreSQL (pg_terminate_backend, as a failover or a pooler's
 * timeout would): it reconnects, a commit made while it was down still wakes the
 * devices (they are woken once after the reconnect), and later commits are heard
 * again. Devices poll every ten minutes, so only a wake-up explains a sync.
 */
test('wake-ups survive the LISTEN connection being terminated, over the event stream and MQTT', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, async (t) => {
  let db: TestStore | undefined;
  let server: CloudServer | undefined;
  const dir = tempDir('syncline-listen-');
  const devices: SharedSync[] = [];
  t.after(async () => {
    for (const device of devices) await device.close();
    await server?.stop();
    await db?.close();
    dir.remove();
  });
  db = await openTestStore('postgres');
  server = await CloudServer.start({ store: db.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger: pino({ level: 'silent' }), mqtt: { port: 0 }, shared: sharedTestConfig() });
  const user = 'listen-reconnect';
  const viaStream = await openSharedDevice(server, dir.path, user, 'stream');
  const viaMqtt = await openSharedDevice(server, dir.path, user, 'mqtt', { mqttUrl: server.mqtt!.url });
  devices.push(viaStream, viaMqtt);
  for (const device of devices) {
    await device.sync();
    device.start({ pollMs: 600_000 });
  }
  const store = db.store;
  // The server's one listening connection: the bundles channel and device revocations share it.
  const listenerPids = async () =>
    (await store.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, [LISTEN_APPLICATION_NAME])).rows.map((r) => r.pid);
  const folders = (device: SharedSync) => device.db.prepare('SELECT id FROM folders ORDER BY id').raw().all().flat();
  const write = (id: string) => store.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, $2, 'by the backend')`, [user, id]);

  let expected: string[] = [];
  for (const round of [1, 2]) {
    const [old] = await listenerPids();
    assert.ok(old !== undefined, 'the server listens on a connection of its own');
    const { rows } = await store.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [old]);
    assert.deepEqual(rows, [{ ok: true }]);
    // Committed while the LISTEN connection is down or coming back: its NOTIFY may be lost, the catch-up after the reconnect is not.
    await write(`down-${round}`);
    expected = [...expected, `down-${round}`].sort();
    for (const device of devices) await eventually(`${device.source} has down-${round}`, () => JSON.stringify(folders(device)) === JSON.stringify(expected), 15_000);
    await eventually('the server listens again on a new connection', async () => {
      const pids = await listenerPids();
      return pids.length === 1 && pids[0] !== old;
    }, 15_000);
    // Heard by notification again, not only by the catch-up.
    await write(`up-${round}`);
    expected = [...expected, `up-${round}`].sort();
    for (const device of devices) await eventually(`${device.source} has up-${round}`, () => JSON.stringify(folders(device)) === JSON.stringify(expected), 15_000);
  }
});

/**
 * Anyone with access to the database can NOTIFY the bundles channel. Payloads
 * that are not a bundle notification (not JSON, no scope, a head that is no
 * sequence number) are logged with what arrived and skipped: the listener keeps
 * listening, and the next commit's notification still wakes the device.
 */
test('a foreign payload on the bundles channel is logged and skipped; the next commit still wakes the device', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, async (t) => {
  let db: TestStore | undefined;
  let server: CloudServer | undefined;
  let device: SharedSync | undefined;
  const dir = tempDir('syncline-listen-foreign-');
  t.after(async () => {
    await device?.close();
    await server?.stop();
    await db?.close();
    dir.remove();
  });
  const logged: { msg: string; channel?: string; payload?: string; err?: { message: string } }[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) });
  db = await openTestStore('postgres');
  server = await CloudServer.start({ store: db.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger, shared: sharedTestConfig() });
  const user = 'listen-foreign';
  device = await openSharedDevice(server, dir.path, user, 'stream');
  await device.sync();
  device.start({ pollMs: 600_000 });
  const store = db.store;

  const foreign = ['not json', JSON.stringify({ head_seq: '7' }), JSON.stringify({ scope: user, head_seq: 'seven' }), ''];
  for (const payload of foreign) await store.query('SELECT pg_notify($1, $2)', [BUNDLES_CHANNEL, payload]);
  await store.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, 'after', 'by the backend')`, [user]);
  const folders = () => device!.db.prepare('SELECT id FROM folders ORDER BY id').raw().all().flat();
  await eventually('the device is woken by the commit after them', () => JSON.stringify(folders()) === '["after"]', 15_000);
  // Notifications arrive in order, so those before the commit's were read by now.
  const skipped = logged.filter((line) => line.msg === 'ignored an unreadable bundle notification');
  assert.deepEqual(skipped.map((line) => [line.channel, line.payload]), foreign.map((payload) => [BUNDLES_CHANNEL, payload]));
  for (const line of skipped) assert.ok(line.err?.message, 'each says why it was skipped');
});
