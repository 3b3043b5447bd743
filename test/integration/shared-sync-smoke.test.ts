import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { CloudServer } from '../../src/cloud/server.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { openSharedDevice, startSharedServer, userToken } from '../support/shared-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

describeEachStore('shared sync smoke', (ctx) => {
  let server: CloudServer;
  let dir: ReturnType<typeof tempDir>;
  before(async () => {
    dir = tempDir('syncline-shared-');
    server = await startSharedServer(ctx.store);
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  test('a row written on one device reaches another', async () => {
    const phone = await openSharedDevice(server, dir.path, 'alice', 'phone');
    const laptop = await openSharedDevice(server, dir.path, 'alice', 'laptop');
    phone.db.prepare(`INSERT INTO folders (id, name, parent_id) VALUES ('f1', 'Inbox', NULL)`).run();
    phone.db.prepare(`INSERT INTO notes (id, folder_id, title, stars, score, attachment) VALUES ('0190a0a0-0000-7000-8000-000000000001', 'f1', 'hello', 3, 1.5, X'00FF')`).run();
    const first = await phone.sync();
    assert.equal(first.push.rows, 2);
    const second = await laptop.sync();
    assert.equal(second.pull.bundles + (second.hydrated?.rows ?? 0) > 0, true);
    assert.deepEqual(laptop.db.prepare('SELECT id, name FROM folders').raw().all(), [['f1', 'Inbox']]);
    const note = laptop.db.prepare('SELECT title, stars, score, hex(attachment) FROM notes').raw().get();
    assert.deepEqual(note, ['hello', 3n, 1.5, '00FF']);
    laptop.db.prepare(`UPDATE notes SET title = 'edited'`).run();
    await laptop.sync();
    await phone.sync();
    assert.deepEqual(phone.db.prepare('SELECT title FROM notes').raw().get(), ['edited']);
    assert.equal(await phone.pending(), 0);
    assert.equal(await laptop.pending(), 0);
    await phone.close();
    await laptop.close();
  });

  test("a push right after the watermark moves it over its own bundle; one after another device's bundle leaves it for the pull", async () => {
    const phone = await openSharedDevice(server, dir.path, 'bob', 'phone');
    const laptop = await openSharedDevice(server, dir.path, 'bob', 'laptop');
    await phone.sync();
    await laptop.sync();
    phone.db.prepare(`INSERT INTO folders (id, name, parent_id) VALUES ('b1', 'one', NULL)`).run();
    const own = await phone.pushPending();
    // Nothing came between: its own bundle needs no pull to come back.
    assert.equal(phone.watermark, BigInt(own.bundleSeq!));
    laptop.db.prepare(`INSERT INTO folders (id, name, parent_id) VALUES ('b2', 'two', NULL)`).run();
    await laptop.pushPending();
    phone.db.prepare(`INSERT INTO folders (id, name, parent_id) VALUES ('b3', 'three', NULL)`).run();
    const after = await phone.pushPending();
    // The laptop's bundle lies between: the watermark stays until a pull brings it.
    assert.equal(phone.watermark, BigInt(own.bundleSeq!));
    await phone.pull();
    assert.equal(phone.watermark, BigInt(after.bundleSeq!));
    assert.deepEqual(phone.db.prepare('SELECT id FROM folders ORDER BY id').raw().all(), [['b1'], ['b2'], ['b3']]);
    await phone.close();
    await laptop.close();
  });

  test('a device opened over a driver syncs through it alone (the way a browser opens one)', async () => {
    const driver = BetterSqlite3Driver.open(join(dir.path, 'alice-tablet.db'), { create: true });
    const tablet = await SharedSync.open({ driver, serverUrl: server.url, token: await userToken('alice'), source: 'tablet' });
    assert.throws(() => tablet.db, (error: Error & { code?: string }) => error.code === 'invalid_config', 'no better-sqlite3 connection to hand out');
    await tablet.sync();
    await tablet.driver.run(`INSERT INTO folders (id, name, parent_id) VALUES (?, ?, NULL)`, ['f-tablet', 'from the driver']);
    assert.equal(await tablet.pending(), 1);
    assert.equal((await tablet.sync()).push.rows, 1);
    const phone = await openSharedDevice(server, dir.path, 'alice', 'phone');
    await phone.sync();
    assert.deepEqual(phone.db.prepare(`SELECT name FROM folders WHERE id = 'f-tablet'`).raw().get(), ['from the driver']);
    await phone.close();
    await tablet.close();
  });
});
