import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import pino from 'pino';
import { revokeDevice } from '../../src/cloud/auth/devices.js';
import { CloudServer } from '../../src/cloud/server.js';
import type { Store } from '../../src/cloud/store/store.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { clientEvent, connectAsDevice } from '../support/mqtt-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { openTestStore, postgresReachable, type TestStore } from '../support/stores.js';

/**
 * The embedded broker's revocation check reads recent revocations, not the
 * connected devices: what it must still catch (a revocation stamped before one
 * it already saw but committed after, one stamped long before the broker
 * started) and what its statement costs. PostgreSQL only: a revocation held
 * back by a row lock needs a second connection, which PGlite does not have
 * (mqtt-abuse.test.ts covers a plain revocation on PGlite).
 */
const CHECK_MS = 200;

type Device = Awaited<ReturnType<typeof newDevice>>;

/** Resolves with whether the client's connection closed within `ms`. */
async function closesWithin(closed: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([closed.then(() => true as const), timeout]);
  clearTimeout(timer);
  return result;
}

describe('embedded MQTT broker: revocations of connected devices', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, () => {
  let handle: TestStore;
  let server: CloudServer;
  /** Statements asking which devices are revoked (the broker's checks), as issued: its store records them on their way to PostgreSQL. */
  const checks: { sql: string; params: readonly unknown[] }[] = [];
  const clients: MqttClient[] = [];

  before(async () => {
    handle = await openTestStore('postgres');
    const store = handle.store;
    const recording = new Proxy(store, {
      get(target, key) {
        if (key === 'query') {
          return (sql: string, params: readonly unknown[] = []) => {
            if (/revoked_at (IS NOT NULL|>=)/.test(sql)) checks.push({ sql, params });
            return target.query(sql, params);
          };
        }
        const value: unknown = Reflect.get(target, key);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) satisfies Store;
    server = await CloudServer.start({
      store: recording,
      httpPort: 0,
      adminToken: 'test-admin-token-0123456789',
      schemaPolicy: 'auto',
      logger: pino({ level: 'silent' }),
      mqtt: { port: 0, maxPacketBytes: 64 * 1024, revocationCheckMs: CHECK_MS },
    });
  });
  after(async () => {
    for (const client of clients) client.end(true);
    await server.stop();
    await handle.close();
  });

  const connect = (device: Device): Promise<MqttClient> => connectAsDevice(server.mqtt!.url, device, clients);

  // First: it needs a broker that has seen no revocation yet.
  test('the first check closes a session of a device revoked long before the broker started', async () => {
    const device = await newDevice(handle.store, 'revoked-long-ago');
    const client = await connect(device);
    const closed = clientEvent(client, 'close');
    // As an operator's UPDATE (or a restored row) could: a revocation stamped a month ago, showing only now.
    await handle.store.query(`UPDATE devices SET revoked_at = now() - interval '30 days' WHERE id = $1`, [device.device_id]);
    assert.ok(await closesWithin(closed, 3_000), 'the session of a device revoked a month ago was not closed');
  });

  test('a device revoked while connected is disconnected within the check interval', async () => {
    const device = await newDevice(handle.store, 'revoked-now');
    const client = await connect(device);
    const counted = server.mqtt!.stats.revokedDisconnects;
    const closed = clientEvent(client, 'close');
    const started = Date.now();
    await revokeDevice(handle.store, device.device_id);
    assert.ok(await closesWithin(closed, 3_000), 'the revoked device was not disconnected');
    assert.ok(Date.now() - started < 5 * CHECK_MS + 1_000, `closed after ${Date.now() - started} ms`);
    await eventually('the disconnect is counted', () => server.mqtt!.stats.revokedDisconnects === counted + 1, 5_000);
  });

  test('a revocation that commits after a later-stamped one was seen is still caught', async () => {
    const late = await newDevice(handle.store, 'revoked-late');
    const other = await newDevice(handle.store, 'revoked-meanwhile');
    const otherClient = await connect(other);
    // The activity recorder writes each connected device's last_seen_at: let `other`'s pass before `late`'s row is locked.
    await eventually("the other device's activity is written", async () => (await handle.store.query(`SELECT 1 FROM devices WHERE id = $1 AND last_seen_at IS NOT NULL`, [other.device_id])).rows.length === 1, 10_000);

    // Another transaction holds `late`'s row (as the activity recorder's UPDATE does until it commits): revokeDevice
    // stamps revoked_at now() when its statement starts, then waits for the lock.
    const locker = new pg.Client({ connectionString: handle.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM devices WHERE id = $1 FOR UPDATE', [late.device_id]);
      const revoking = revokeDevice(handle.store, late.device_id);
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Signing in now passes (the revocation has not committed): the gap between authentication and the session.
      const lateClient = await connect(late);
      const lateClosed = clientEvent(lateClient, 'close');

      // A revocation stamped later, committed at once: the broker sees it, and its newest revoked_at moves past `late`'s.
      const otherClosed = clientEvent(otherClient, 'close');
      await revokeDevice(handle.store, other.device_id);
      assert.ok(await closesWithin(otherClosed, 3_000), 'the other revoked device was not disconnected');
      assert.ok(lateClient.connected, 'the late device was closed before its revocation committed');

      await locker.query('COMMIT');
      await revoking;
      const stamps = await handle.store.query<{ late: boolean }>('SELECT (SELECT revoked_at FROM devices WHERE id = $1) < (SELECT revoked_at FROM devices WHERE id = $2) AS late', [late.device_id, other.device_id]);
      assert.equal(stamps.rows[0]!.late, true, 'the late revocation must be stamped before the other one');
      assert.ok(await closesWithin(lateClosed, 3_000), 'a revocation committed after a later-stamped one was never acted on');
    } finally {
      await locker.end();
    }
  });

  test("the check's statement does not grow with connected devices, and reads only revoked devices through their index", async () => {
    const devices = await Promise.all(Array.from({ length: 20 }, (_, i) => newDevice(handle.store, `connected-${i}`)));
    await Promise.all(devices.map((d) => connect(d)));
    const from = checks.length;
    await eventually('three checks with every device connected', () => checks.length >= from + 3, 10_000);
    const ids = new Set(devices.map((d) => d.device_id));
    for (const { sql, params } of checks.slice(from)) {
      // One parameter, a time: revocations were seen (the tests above), so the check starts shortly before the newest.
      assert.equal(params.length, 1, sql);
      assert.ok(!ids.has(String(params[0])) && !Number.isNaN(Date.parse(String(params[0]))), `not a time: ${String(params[0])}`);
    }

    // At 5,000 registered devices, a handful revoked, the same statement is a range read of the revoked ones.
    await handle.store.query(
      `INSERT INTO devices (id, org_id, project_id, name, token_hash)
       SELECT gen_random_uuid(), 'default', 'default', 'bulk-' || i, md5('bulk-' || i) FROM generate_series(1, 5000) AS i`,
    );
    await handle.store.query(`UPDATE devices SET revoked_at = now() WHERE name IN ('bulk-1', 'bulk-2', 'bulk-3')`);
    await handle.store.query('ANALYZE devices');
    const { sql, params } = checks.at(-1)!;
    const { rows } = await handle.store.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
    const plan = rows[0]!['QUERY PLAN'][0].Plan;
    assert.equal(plan['Index Name'], 'devices_revoked_at', JSON.stringify(plan));
    const revokedSince = await handle.store.query<{ n: number }>('SELECT count(*)::int AS n FROM devices WHERE revoked_at >= $1::timestamptz', params);
    assert.equal(plan['Actual Rows'], revokedSince.rows[0]!.n);
    assert.ok(revokedSince.rows[0]!.n <= 6, `read ${revokedSince.rows[0]!.n} rows`);
  });
});
