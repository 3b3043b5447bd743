import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import pino from 'pino';
import { revokeDevice } from '../../src/cloud/auth/devices.js';
import { REVOCATION_OVERLAP_MS } from '../../src/cloud/mqtt/broker-guards.js';
import { CloudServer } from '../../src/cloud/server.js';
import type { ListenHandlers } from '../../src/cloud/store/pg-listener.js';
import type { Store } from '../../src/cloud/store/store.js';
import { DEVICE_REVOKED_CHANNEL } from '../../src/protocol/device-revocation.js';
import { deleteDevice, newDevice } from '../support/cloud-fixtures.js';
import { clientEvent, connectAsDevice } from '../support/mqtt-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { openTestStore, postgresReachable, type TestStore } from '../support/stores.js';

/**
 * The embedded broker closes the sessions of revoked devices: at once when the
 * database announces the revocation (its trigger's NOTIFY), and by a check
 * every interval that reads recent revocations, not the connected devices. The
 * check is tested on a broker whose store refuses LISTEN (so it is the only
 * path): what it must still catch (a revocation stamped before one it already
 * saw but committed after, one stamped long before the broker started), how its
 * range moves on, and what its statement costs. PostgreSQL only: a revocation
 * held back by a row lock needs a second connection, which PGlite does not
 * have (mqtt-abuse.test.ts covers a plain revocation on PGlite).
 */
const CHECK_MS = 200;

type Device = Awaited<ReturnType<typeof newDevice>>;
type Check = { sql: string; params: readonly unknown[] };

/** Resolves with whether the client's connection closed within `ms`. */
async function closesWithin(closed: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([closed.then(() => true as const), timeout]);
  clearTimeout(timer);
  return result;
}

/** The store, recording the statements asking which devices are revoked (the broker's checks) on their way to PostgreSQL; without `listen`, LISTEN never succeeds (each subscriber is told it is lost, as while the store keeps trying). */
function observed(store: Store, checks: Check[], options: { listen: boolean }): Store {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'query') {
        return (sql: string, params: readonly unknown[] = []) => {
          if (/revoked_at (IS NOT NULL|>=)/.test(sql)) checks.push({ sql, params });
          return target.query(sql, params);
        };
      }
      if (key === 'listen' && !options.listen) {
        return (_channel: string, handlers: ListenHandlers) => {
          handlers.onLost?.();
          return Promise.resolve(() => Promise.resolve());
        };
      }
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) satisfies Store;
}

function startServer(store: Store, revocationCheckMs: number): Promise<CloudServer> {
  return CloudServer.start({
    store,
    httpPort: 0,
    adminToken: 'test-admin-token-0123456789',
    schemaPolicy: 'auto',
    logger: pino({ level: 'silent' }),
    mqtt: { port: 0, maxPacketBytes: 64 * 1024, revocationCheckMs },
  });
}

/** The plan node reading the index, wherever EXPLAIN puts it. */
function indexScan(plan: Record<string, unknown>): Record<string, unknown> | undefined {
  if (plan['Index Name'] !== undefined) return plan;
  for (const child of (plan['Plans'] as Record<string, unknown>[] | undefined) ?? []) {
    const found = indexScan(child);
    if (found) return found;
  }
  return undefined;
}

/** A server on a scratch database for the enclosing suite, with its check statements recorded and its clients ended after it. */
function brokerSuite(options: { listen: boolean; checkMs: number }) {
  const suite = { handle: undefined as unknown as TestStore, server: undefined as unknown as CloudServer, checks: [] as Check[], clients: [] as MqttClient[] };
  before(async () => {
    suite.handle = await openTestStore('postgres');
    suite.server = await startServer(observed(suite.handle.store, suite.checks, { listen: options.listen }), options.checkMs);
  });
  after(async () => {
    for (const client of suite.clients) client.end(true);
    await suite.server.stop();
    await suite.handle.close();
  });
  return suite;
}

describe('embedded MQTT broker: the revocation check, without notifications', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, () => {
  const suite = brokerSuite({ listen: false, checkMs: CHECK_MS });
  const { checks } = suite;
  const connect = (device: Device): Promise<MqttClient> => connectAsDevice(suite.server.mqtt!.url, device, suite.clients);

  // First: it needs a broker that has made no check yet.
  test('the first check reads every revoked device, however long ago it was revoked', async () => {
    const revoked = await newDevice(suite.handle.store, 'revoked-long-ago');
    await suite.handle.store.query(`UPDATE devices SET revoked_at = now() - interval '30 days' WHERE id = $1`, [revoked.device_id]);
    assert.equal(checks.length, 0, 'no check runs without a session');
    await connect(await newDevice(suite.handle.store, 'first-connected'));
    await eventually('two checks', () => checks.length >= 2, 5_000);
    assert.deepEqual(checks[0]!.params, ['-infinity']);
    // Later ones start from the first's clock: a minute before it, long after that revocation.
    const since = Date.parse(String(checks[1]!.params[0]));
    const { rows } = await suite.handle.store.query<{ revoked_at: Date }>('SELECT revoked_at FROM devices WHERE id = $1', [revoked.device_id]);
    assert.ok(since > rows[0]!.revoked_at.getTime() + 29 * 86_400_000, `the second check reads from ${String(checks[1]!.params[0])}`);
  });

  test('a device revoked while connected is disconnected within the check interval', async () => {
    const device = await newDevice(suite.handle.store, 'revoked-now');
    const client = await connect(device);
    const counted = suite.server.mqtt!.stats.revokedDisconnects;
    const closed = clientEvent(client, 'close');
    const started = Date.now();
    await revokeDevice(suite.handle.store, device.device_id);
    assert.ok(await closesWithin(closed, 3_000), 'the revoked device was not disconnected');
    assert.ok(Date.now() - started < 5 * CHECK_MS + 1_000, `closed after ${Date.now() - started} ms`);
    await eventually('the disconnect is counted', () => suite.server.mqtt!.stats.revokedDisconnects === counted + 1, 5_000);
  });

  test('a revocation that commits after a later-stamped one was seen is still caught', async () => {
    const late = await newDevice(suite.handle.store, 'revoked-late');
    const other = await newDevice(suite.handle.store, 'revoked-meanwhile');
    const otherClient = await connect(other);
    // The activity recorder writes each connected device's last_seen_at: let `other`'s pass before `late`'s row is locked.
    await eventually("the other device's activity is written", async () => (await suite.handle.store.query(`SELECT 1 FROM devices WHERE id = $1 AND last_seen_at IS NOT NULL`, [other.device_id])).rows.length === 1, 10_000);

    // Another transaction holds `late`'s row (as the activity recorder's UPDATE does until it commits): revokeDevice
    // stamps revoked_at now() when its statement starts, then waits for the lock.
    const locker = new pg.Client({ connectionString: suite.handle.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM devices WHERE id = $1 FOR UPDATE', [late.device_id]);
      const revoking = revokeDevice(suite.handle.store, late.device_id);
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Signing in now passes (the revocation has not committed): the gap between authentication and the session.
      const lateClient = await connect(late);
      const lateClosed = clientEvent(lateClient, 'close');

      // A revocation stamped later, committed at once: the broker sees it, and its newest revoked_at moves past `late`'s.
      const otherClosed = clientEvent(otherClient, 'close');
      await revokeDevice(suite.handle.store, other.device_id);
      assert.ok(await closesWithin(otherClosed, 3_000), 'the other revoked device was not disconnected');
      assert.ok(lateClient.connected, 'the late device was closed before its revocation committed');

      await locker.query('COMMIT');
      await revoking;
      const stamps = await suite.handle.store.query<{ late: boolean }>('SELECT (SELECT revoked_at FROM devices WHERE id = $1) < (SELECT revoked_at FROM devices WHERE id = $2) AS late', [late.device_id, other.device_id]);
      assert.equal(stamps.rows[0]!.late, true, 'the late revocation must be stamped before the other one');
      assert.ok(await closesWithin(lateClosed, 3_000), 'a revocation committed after a later-stamped one was never acted on');
    } finally {
      await locker.end();
    }
  });

  test("the check's statement does not grow with connected devices, and reads only revoked devices through their index", async () => {
    const devices = await Promise.all(Array.from({ length: 20 }, (_, i) => newDevice(suite.handle.store, `connected-${i}`)));
    await Promise.all(devices.map((d) => connect(d)));
    const from = checks.length;
    await eventually('three checks with every device connected', () => checks.length >= from + 3, 10_000);
    const ids = new Set(devices.map((d) => d.device_id));
    for (const { sql, params } of checks.slice(from)) {
      // One parameter, a time: checks were made (the tests above), so the range starts shortly before the previous one.
      assert.equal(params.length, 1, sql);
      assert.ok(!ids.has(String(params[0])) && !Number.isNaN(Date.parse(String(params[0]))), `not a time: ${String(params[0])}`);
    }

    // At 5,000 registered devices, a handful revoked, the same statement is a range read of the revoked ones.
    await suite.handle.store.query(
      `INSERT INTO devices (id, org_id, project_id, name, token_hash)
       SELECT gen_random_uuid(), 'default', 'default', 'bulk-' || i, md5('bulk-' || i) FROM generate_series(1, 5000) AS i`,
    );
    await suite.handle.store.query(`UPDATE devices SET revoked_at = now() WHERE name IN ('bulk-1', 'bulk-2', 'bulk-3')`);
    await suite.handle.store.query('ANALYZE devices');
    const { sql, params } = checks.at(-1)!;
    const { rows } = await suite.handle.store.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
    const plan = indexScan(rows[0]!['QUERY PLAN'][0].Plan) ?? {};
    assert.equal(plan['Index Name'], 'devices_revoked_at', JSON.stringify(rows[0]!['QUERY PLAN']));
    const revokedSince = await suite.handle.store.query<{ n: number }>('SELECT count(*)::int AS n FROM devices WHERE revoked_at >= $1::timestamptz', params);
    assert.equal(plan['Actual Rows'], revokedSince.rows[0]!.n);
    assert.ok(revokedSince.rows[0]!.n <= 6, `read ${revokedSince.rows[0]!.n} rows`);
  });

  test('once a check has passed, the range moves on with the database clock, not with the newest revocation', async () => {
    await newDevice(suite.handle.store, 'keeps-checks-running').then((d) => connect(d));
    // Every revocation of this suite is older than this: read now, a moment after the newest.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const { rows } = await suite.handle.store.query<{ now: Date; newest: Date }>('SELECT now(), (SELECT max(revoked_at) FROM devices) AS newest');
    const { now, newest } = rows[0]!;
    assert.ok(newest < now);
    const from = checks.length;
    // Two checks later the range starts a minute before a check made after `now`: revocations older than that are not read again.
    await eventually('a check reads from a minute before a check made after the newest revocation', () => checks.slice(from).some(({ params }) => Date.parse(String(params[0])) >= now.getTime() - REVOCATION_OVERLAP_MS), 5_000);
  });
});

describe('embedded MQTT broker: revocations announced by the database', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, () => {
  // A check a minute apart: only the notification can close a session within this test.
  const suite = brokerSuite({ listen: true, checkMs: 60_000 });
  const { checks } = suite;

  test('a revocation written by hand in SQL, stamped where no check reads, closes the session at once; a foreign payload is skipped', async () => {
    const device = await newDevice(suite.handle.store, 'revoked-by-hand');
    const client = await connectAsDevice(suite.server.mqtt!.url, device, suite.clients);
    const closed = clientEvent(client, 'close');
    await suite.handle.store.query('SELECT pg_notify($1, $2)', [DEVICE_REVOKED_CHANNEL, 'not a device id']);
    const started = Date.now();
    await suite.handle.store.query(`UPDATE devices SET revoked_at = now() - interval '30 days' WHERE id = $1`, [device.device_id]);
    assert.ok(await closesWithin(closed, 2_000), 'the session of a device revoked by hand was not closed');
    assert.ok(Date.now() - started < 2_000, `closed after ${Date.now() - started} ms`);
    assert.equal(suite.server.mqtt!.stats.revokedDisconnects, 1);
    assert.equal(checks.length, 0, 'no check ran: the notification closed it');
  });

  test('a device deleted by hand in SQL (no row for any check to read) has its session closed at once', async () => {
    const device = await newDevice(suite.handle.store, 'deleted-by-hand');
    const client = await connectAsDevice(suite.server.mqtt!.url, device, suite.clients);
    const closed = clientEvent(client, 'close');
    const before = suite.server.mqtt!.stats.revokedDisconnects;
    const started = Date.now();
    await deleteDevice(suite.handle.store, device.device_id);
    assert.ok(await closesWithin(closed, 2_000), 'the session of a deleted device was not closed');
    assert.ok(Date.now() - started < 2_000, `closed after ${Date.now() - started} ms`);
    assert.equal(suite.server.mqtt!.stats.revokedDisconnects, before + 1);
  });
});
