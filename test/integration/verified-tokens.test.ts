import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { authenticateDevice, revokeDevice } from '../../src/cloud/auth/devices.js';
import { listenForRevocations } from '../../src/cloud/auth/revocation-notices.js';
import { VerifiedTokens } from '../../src/cloud/auth/verified-tokens.js';
import { CloudServer } from '../../src/cloud/server.js';
import { LISTEN_APPLICATION_NAME } from '../../src/cloud/store/pg-listener.js';
import type { Store } from '../../src/cloud/store/store.js';
import { Routes } from '../../src/protocol/constants.js';
import { DEVICE_REVOKED_CHANNEL } from '../../src/protocol/device-revocation.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { deleteDevice, newDevice } from '../support/cloud-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { describeEachStore, openTestStore, postgresReachable } from '../support/stores.js';

const silent = pino({ level: 'silent' });

/** What the HTTP front door does: the cache first, else the database, remembering an active token. */
async function verify(store: Store, cache: VerifiedTokens, token: string): Promise<{ cached: boolean; active: boolean }> {
  if (cache.get(token)) return { cached: true, active: true };
  const ticket = cache.ticket();
  try {
    cache.remember(token, await authenticateDevice(store, token), ticket);
    return { cached: false, active: true };
  } catch (error) {
    if (isSynclineError(error) && error.code === 'unauthorized') return { cached: false, active: false };
    throw error;
  }
}

describeEachStore('verified device tokens', (ctx) => {
  test('an active token is remembered; revokeDevice drops it before it returns', async () => {
    const cache = await VerifiedTokens.start(ctx.store, silent);
    try {
      const device = await newDevice(ctx.store);
      assert.deepEqual(await verify(ctx.store, cache, device.token), { cached: false, active: true });
      assert.deepEqual(await verify(ctx.store, cache, device.token), { cached: true, active: true });
      await revokeDevice(ctx.store, device.device_id);
      assert.equal(cache.get(device.token), undefined);
      assert.deepEqual(await verify(ctx.store, cache, device.token), { cached: false, active: false });
      assert.deepEqual(await verify(ctx.store, cache, device.token), { cached: false, active: false }, 'a revoked token is never remembered');
    } finally {
      await cache.stop();
    }
  });

  test('a revocation written by hand in SQL is announced by the database and heard at once', async () => {
    const cache = await VerifiedTokens.start(ctx.store, silent);
    try {
      const device = await newDevice(ctx.store);
      await verify(ctx.store, cache, device.token);
      assert.ok(cache.get(device.token));
      // What an operator may run, or revokeDevice in another server process (this process's caches are not told directly).
      await ctx.store.query(`UPDATE devices SET revoked_at = now() WHERE id = $1`, [device.device_id]);
      // The entry would live 30 s: only the notification drops it sooner.
      await eventually('the notification drops the token', () => cache.get(device.token) === undefined, 2_000);
    } finally {
      await cache.stop();
    }
  });

  test('the database announces a device once, when it is revoked, inserted revoked, or deleted unrevoked', async () => {
    const heard: string[] = [];
    const unlisten = await listenForRevocations(ctx.store, silent, { onRevoked: (deviceId) => heard.push(deviceId) });
    try {
      const updated = await newDevice(ctx.store, 'updated');
      const kept = await newDevice(ctx.store, 'kept');
      await ctx.store.query(`UPDATE devices SET revoked_at = now() WHERE id = $1`, [updated.device_id]);
      // Neither a re-stamp of a revoked device, nor another column of an active one, nor revokeDevice on a revoked one is a revocation.
      await ctx.store.query(`UPDATE devices SET revoked_at = now() - interval '1 day' WHERE id = $1`, [updated.device_id]);
      await ctx.store.query(`UPDATE devices SET name = 'renamed', revoked_at = NULL WHERE id = $1`, [kept.device_id]);
      await revokeDevice(ctx.store, updated.device_id);
      const inserted = 'd0000000-0000-4000-8000-000000000020';
      await ctx.store.query(`INSERT INTO devices (id, org_id, project_id, name, token_hash, revoked_at) VALUES ($1::uuid, 'default', 'default', 'restored', md5($1::text), now())`, [inserted]);
      // A deleted device is announced as revoked (migration 0021); one deleted already revoked was announced then.
      const deleted = await newDevice(ctx.store, 'deleted');
      await deleteDevice(ctx.store, deleted.device_id);
      await deleteDevice(ctx.store, updated.device_id);
      await eventually('the revocations and the deletion are heard', () => heard.length >= 3, 5_000);
      // A marker through the same channel, sent last: every notification before it has been delivered.
      const marker = 'e0000000-0000-4000-8000-000000000000';
      await ctx.store.query('SELECT pg_notify($1, $2)', [DEVICE_REVOKED_CHANNEL, marker]);
      await eventually('the marker arrives', () => heard.includes(marker), 5_000);
      assert.deepEqual(heard, [updated.device_id, inserted, deleted.device_id, marker]);
    } finally {
      await unlisten();
    }
  });

  test('a notification that is not a device id is logged and skipped; the listener goes on', async () => {
    const logged: { msg: string; channel?: string; payload?: string; err?: unknown }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) });
    const cache = await VerifiedTokens.start(ctx.store, logger);
    try {
      const device = await newDevice(ctx.store);
      await verify(ctx.store, cache, device.token);
      const foreign = ['not a device', '', JSON.stringify({ device_id: device.device_id }), `${device.device_id}${'x'.repeat(300)}`];
      for (const payload of foreign) await ctx.store.query('SELECT pg_notify($1, $2)', [DEVICE_REVOKED_CHANNEL, payload]);
      assert.ok(cache.get(device.token), 'a foreign payload drops nothing');
      await ctx.store.query(`UPDATE devices SET revoked_at = now() WHERE id = $1`, [device.device_id]);
      await eventually('the revocation after them is heard', () => cache.get(device.token) === undefined, 2_000);
      // Notifications arrive in order, so those before the revocation's were read by now.
      const skipped = logged.filter((line) => line.msg === 'ignored an unreadable device revocation notification');
      assert.deepEqual(
        skipped.map((line) => [line.channel, line.payload]),
        foreign.map((payload) => [DEVICE_REVOKED_CHANNEL, payload.slice(0, 200)]),
      );
      for (const line of skipped) assert.ok(line.err, 'each says why it was skipped');
    } finally {
      await cache.stop();
    }
  });

  /** A server's cache holds the device's token; after `act` (in SQL, as another process or an operator would) the token is refused within 2 s, not after the cache's TTL. */
  async function refusedOverHttpWithin2s(act: (deviceId: string) => Promise<unknown>): Promise<void> {
    const server = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: 'test-admin-token-0123456789', schemaPolicy: 'auto', logger: silent });
    try {
      const device = await newDevice(ctx.store);
      // An empty batch: the token is checked (and remembered) before the body is, which is refused as invalid.
      const send = async () => (await fetch(`${server.url}${Routes.rowBatch}`, { method: 'POST', headers: { authorization: `Bearer ${device.token}`, 'content-type': 'application/json' }, body: '{}' })).status;
      assert.equal(await send(), 400);
      assert.equal(await send(), 400);
      await act(device.device_id);
      const started = Date.now();
      await eventually('the token is refused', async () => (await send()) === 401, 2_000);
      assert.ok(Date.now() - started < 2_000, `refused after ${Date.now() - started} ms`);
    } finally {
      await server.stop();
    }
  }

  test('over HTTP, a token revoked by a plain UPDATE is refused within moments, not after the cache TTL', () =>
    refusedOverHttpWithin2s((deviceId) => ctx.store.query(`UPDATE devices SET revoked_at = now() WHERE id = $1`, [deviceId])));

  test('over HTTP, the token of a device deleted by hand in SQL is refused within moments, not after the cache TTL', () => refusedOverHttpWithin2s((deviceId) => deleteDevice(ctx.store, deviceId)));

  test('a lookup that began before a revocation is not remembered', async () => {
    const cache = await VerifiedTokens.start(ctx.store, silent);
    try {
      const device = await newDevice(ctx.store);
      const ticket = cache.ticket();
      const identity = await authenticateDevice(ctx.store, device.token);
      await revokeDevice(ctx.store, device.device_id);
      cache.remember(device.token, identity, ticket);
      assert.equal(cache.get(device.token), undefined);
    } finally {
      await cache.stop();
    }
  });

  test('an entry expires after its TTL', async () => {
    const cache = await VerifiedTokens.start(ctx.store, silent, { ttlMs: 50 });
    try {
      const device = await newDevice(ctx.store);
      await verify(ctx.store, cache, device.token);
      assert.ok(cache.get(device.token));
      await new Promise((resolve) => setTimeout(resolve, 80));
      assert.equal(cache.get(device.token), undefined);
    } finally {
      await cache.stop();
    }
  });
});

test('without its LISTEN connection the cache remembers nothing, and starts again once it is back', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, async () => {
  const db = await openTestStore('postgres');
  const cache = await VerifiedTokens.start(db.store, silent);
  try {
    const device = await newDevice(db.store);
    await verify(db.store, cache, device.token);
    assert.ok(cache.get(device.token));
    const { rows } = await db.store.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
      [LISTEN_APPLICATION_NAME],
    );
    assert.deepEqual(rows, [{ ok: true }]);
    await eventually('the cache forgets what it held', () => cache.get(device.token) === undefined, 10_000);
    await eventually('it remembers again after the reconnect', async () => (await verify(db.store, cache, device.token)).cached, 15_000);
  } finally {
    await cache.stop();
    await db.close();
  }
});
