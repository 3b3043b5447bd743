import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import { SHARED_WAKE_USERNAME, sharedWakeTopic } from '../../src/protocol/topics.js';
import { eventually } from '../support/replication-check.js';
import { ADMIN_TOKEN, openSharedDevice, sharedTestConfig, userToken } from '../support/shared-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Wake-ups: a device running in the background learns of a new bundle from the
 * server's event stream, or from its scope's MQTT topic, long before its next
 * poll. Polling is set to ten minutes, so only a wake-up can explain the sync.
 */
describeEachStore('shared sync wake-ups', (ctx) => {
  let server: CloudServer;
  let dir: ReturnType<typeof tempDir>;
  before(async () => {
    dir = tempDir('syncline-shared-wake-');
    server = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger: pino({ level: 'silent' }), mqtt: { port: 0 }, shared: sharedTestConfig() });
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  const folders = (db: { prepare(sql: string): { raw(): { all(): unknown[] } } }) => db.prepare('SELECT id, name FROM folders ORDER BY id').raw().all();

  for (const via of ['sse', 'mqtt'] as const) {
    test(`a background device pulls as soon as another pushes (wake-up over ${via})`, async () => {
      const user = `wake-${via}`;
      const listener = await openSharedDevice(server, dir.path, user, 'listener', via === 'mqtt' ? { mqttUrl: server.mqtt!.url } : {});
      const writer = await openSharedDevice(server, dir.path, user, 'writer');
      await listener.sync();
      listener.start({ pollMs: 600_000 });
      writer.db.prepare("INSERT INTO folders (id, name) VALUES ('w1', 'woken')").run();
      await writer.sync();
      await eventually('the listener has the row', () => folders(listener.db).length === 1, 15_000);
      assert.deepEqual(folders(listener.db), [['w1', 'woken']]);
      await listener.close();
      await writer.close();
    });
  }

  test("a background device pushes the app's commits at once, from another connection and from its own", async () => {
    const writer = await openSharedDevice(server, dir.path, 'wake-local', 'writer');
    const reader = await openSharedDevice(server, dir.path, 'wake-local', 'reader');
    await writer.sync();
    await reader.sync();
    // Polling every ten minutes: only the file watch can explain a push.
    writer.start({ pollMs: 600_000 });
    const app = new Database(join(dir.path, 'wake-local-writer.db'));
    app.prepare("INSERT INTO folders (id, name) VALUES ('a1', 'other connection')").run();
    await eventually('the other connection\'s commit is pushed', async () => (await writer.pending()) === 0 && (await reader.pull()).rows > 0, 10_000);
    writer.db.prepare("INSERT INTO folders (id, name) VALUES ('a2', 'own connection')").run();
    await eventually('the own connection\'s write is pushed', async () => (await writer.pending()) === 0 && (await reader.pull()).rows > 0, 10_000);
    assert.deepEqual(folders(reader.db), [
      ['a1', 'other connection'],
      ['a2', 'own connection'],
    ]);
    app.close();
    await writer.close();
    await reader.close();
  });

  test('a background sync that fails backs off and retries until the server answers, then pushes what waited', async () => {
    let offline = true;
    const pushes: number[] = [];
    // The push route fails as an unreachable server would; the event stream and pulls still answer.
    const fetch: typeof globalThis.fetch = (input, init) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (!url.includes('/push')) return globalThis.fetch(input, init);
      pushes.push(performance.now());
      return offline ? Promise.reject(new TypeError('fetch failed')) : globalThis.fetch(input, init);
    };
    const device = await openSharedDevice(server, dir.path, 'wake-retry', 'device', { fetch });
    const other = await openSharedDevice(server, dir.path, 'wake-retry', 'other');
    try {
      await device.sync();
      device.start({ pollMs: 600_000, retryMaxMs: 400 });
      device.db.prepare("INSERT INTO folders (id, name) VALUES ('r1', 'waited')").run();
      await eventually('the push is retried', () => pushes.length >= 4, 15_000);
      const gaps = pushes.slice(1).map((at, i) => at - pushes[i]!);
      // Each retry waits 50 ms + full jitter up to 400 ms (more under load, never less).
      assert.ok(gaps.every((gap) => gap >= 45), `retries spaced by the backoff: ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`);
      offline = false;
      await eventually('what waited is pushed once the server answers', async () => (await device.pending()) === 0, 15_000);
      await other.sync();
      assert.deepEqual(folders(other.db), [['r1', 'waited']]);
    } finally {
      await device.close();
      await other.close();
    }
  });

  test("a wake-up session follows only its own scope's topic and may publish nothing", async () => {
    const token = await userToken('wake-acl');
    const client = await mqtt.connectAsync(server.mqtt!.url, { clientId: 'acl-device', username: SHARED_WAKE_USERNAME, password: token, reconnectPeriod: 0 });
    try {
      const [own] = await client.subscribeAsync(sharedWakeTopic('wake-acl'), { qos: 1 });
      assert.equal(own!.qos, 1);
      await assert.rejects(client.subscribeAsync(sharedWakeTopic('someone-else'), { qos: 1 }), /Subscribe error/, "another scope's topic is refused");
      await assert.rejects(client.subscribeAsync('syncline/shared/#', { qos: 1 }), /Subscribe error/, 'a wildcard is refused');
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.publish(sharedWakeTopic('wake-acl'), '{"head_seq":"999"}', { qos: 1 });
      await closed;
    } finally {
      await client.endAsync(true);
    }
    await assert.rejects(mqtt.connectAsync(server.mqtt!.url, { clientId: 'bad', username: SHARED_WAKE_USERNAME, password: `${token}x`, reconnectPeriod: 0 }));
  });
});
