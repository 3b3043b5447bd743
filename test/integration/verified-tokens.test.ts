import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { authenticateDevice, revokeDevice } from '../../src/cloud/auth/devices.js';
import { DEVICE_REVOKED_CHANNEL, VerifiedTokens } from '../../src/cloud/auth/verified-tokens.js';
import type { Store } from '../../src/cloud/store/store.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { newDevice } from '../support/cloud-fixtures.js';
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

  test('a revocation made elsewhere is heard by its notification', async () => {
    const cache = await VerifiedTokens.start(ctx.store, silent);
    try {
      const device = await newDevice(ctx.store);
      await verify(ctx.store, cache, device.token);
      assert.ok(cache.get(device.token));
      // What revokeDevice in another server process sends (this process's own caches are not told directly).
      await ctx.store.query(`UPDATE devices SET revoked_at = now() WHERE id = $1`, [device.device_id]);
      await ctx.store.query('SELECT pg_notify($1, $2)', [DEVICE_REVOKED_CHANNEL, device.device_id]);
      await eventually('the notification drops the token', () => cache.get(device.token) === undefined, 10_000);
    } finally {
      await cache.stop();
    }
  });

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
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query = $1`,
      [`LISTEN "${DEVICE_REVOKED_CHANNEL}"`],
    );
    assert.deepEqual(rows, [{ ok: true }]);
    await eventually('the cache forgets what it held', () => cache.get(device.token) === undefined, 10_000);
    await eventually('it remembers again after the reconnect', async () => (await verify(db.store, cache, device.token)).cached, 15_000);
  } finally {
    await cache.stop();
    await db.close();
  }
});
