import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import { Agent } from '../../src/device/agent.js';
import { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { eventually, lineages, mirrorRows } from '../support/replication-check.js';
import { ADMIN_TOKEN, openSharedDevice, sharedTestConfig, userToken } from '../support/shared-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * One file, one loop: an agent ships the file's edge table and, in the same
 * loop, two-way syncs its shared tables (Agent's `shared` option). The app's
 * commits to either kind go out, a bundle another device pushes comes in on the
 * server's announcement (the poll is ten minutes), and stop() ends both.
 */
describeEachStore('agent with two-way sync in its loop', (ctx) => {
  let server: CloudServer;
  let dir: ReturnType<typeof tempDir>;
  before(async () => {
    dir = tempDir('syncline-one-loop-');
    server = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger: pino({ level: 'silent' }), shared: sharedTestConfig() });
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  test('edge rows and two-way rows of one file go out from one agent, and remote bundles come in', async () => {
    const path = join(dir.path, 'gateway.db');
    const sync = await SharedSync.open({ path, serverUrl: server.url, token: await userToken('one-loop'), source: 'gateway' });
    const phone = await openSharedDevice(server, dir.path, 'one-loop', 'phone');
    const app = new Database(path);
    app.pragma('journal_mode = WAL');
    app.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT NOT NULL)');
    const device = await newDevice(ctx.store, 'gateway');
    // A partial batch goes out at once (the default holds one up to 5 s waiting for more rows).
    const agent = new Agent({ dbPath: path, transport: new HttpTransport({ serverUrl: server.url, token: device.token }), publisher: { flushIntervalMs: 20 }, shared: { sync, pollMs: 600_000 } });
    const running = agent.run();
    const adminServer = { url: server.url, adminToken: ADMIN_TOKEN };
    try {
      app.exec("INSERT INTO events (id, what) VALUES (1, 'edge row'); INSERT INTO folders (id, name) VALUES ('g1', 'from the gateway')");
      await eventually('the edge row is mirrored', async () => {
        const lineage = (await lineages(adminServer, device.device_id)).find((l) => l.source_table === 'events');
        return lineage !== undefined && (await mirrorRows(adminServer, lineage.id)).length === 1;
      }, 20_000);
      assert.deepEqual(
        (await lineages(adminServer, device.device_id)).map((l) => l.source_table),
        ['events'],
        'shared tables are not shipped as edge tables',
      );
      await eventually('the two-way row reaches the phone', async () => {
        await phone.pull();
        return phone.db.prepare("SELECT name FROM folders WHERE id = 'g1'").pluck().get() === 'from the gateway';
      }, 20_000);

      phone.db.exec("INSERT INTO folders (id, name) VALUES ('p1', 'from the phone')");
      await phone.sync();
      await eventually('the phone\'s bundle is pulled into the gateway file', () => app.prepare("SELECT name FROM folders WHERE id = 'p1'").pluck().get() === 'from the phone', 20_000);
      assert.equal(await sync.pending(), 0);
    } finally {
      await agent.stop();
      await running;
      app.close();
      await sync.close();
      await phone.close();
    }
    assert.equal((await agent.status()).rows_acked, 1);
    assert.throws(() => new Agent({ dbPath: path, transport: new HttpTransport({ serverUrl: server.url, token: device.token }), once: true, shared: { sync } }).run(), /once/);
  });
});
