import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { changes } from '../../src/device/change-stream/change-stream.js';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';
import { scenarioSuite } from '../support/shared-scenarios.js';
import { describeEachStore } from '../support/stores.js';

/** The local change stream over a two-way file: one journal, each change marked with who made it. */
describeEachStore('shared sync: the change stream of a two-way file', (ctx) => {
  const suite = scenarioSuite(ctx);

  test("a hydration reaches a checkpointed consumer as remote snapshots, then pulls as remote and the app's writes as local", async () => {
    const phone = await suite.device('stream-bob', 'phone');
    phone.db.prepare(`INSERT INTO folders VALUES ('f1', 'Inbox', NULL)`).run();
    await phone.sync();

    const path = suite.path('stream-bob', 'tablet');
    const app = new Database(path);
    app.pragma('journal_mode = WAL');
    app.close();
    const stream = await changes({ db: path, tables: ['folders'], checkpoint: 'ui', checkpointIntervalMs: 0 });
    const events = stream[Symbol.asyncIterator]();
    const next = async () => {
      const e = (await events.next()).value as ChangeEvent;
      return [e.origin, e.op, e.key.id, e.after?.name];
    };
    try {
      const tablet = await suite.device('stream-bob', 'tablet');
      assert.ok((await tablet.sync()).hydrated, 'the tablet hydrated');
      assert.deepEqual(await next(), ['remote', 'snapshot', 'f1', 'Inbox']);
      phone.db.prepare(`UPDATE folders SET name = 'Inbox (phone)' WHERE id = 'f1'`).run();
      await phone.sync();
      await tablet.sync();
      assert.deepEqual(await next(), ['remote', 'update', 'f1', 'Inbox (phone)']);
      tablet.db.prepare(`INSERT INTO folders VALUES ('f2', 'Tablet', NULL)`).run();
      assert.equal((await tablet.sync()).push.rows, 1);
      assert.deepEqual(await next(), ['local', 'insert', 'f2', 'Tablet']);
    } finally {
      await stream.close();
    }

    // A consumer that starts later bootstraps from a snapshot of the two-way table, then
    // continues with the journal: the app's next write follows, nothing twice.
    const late = await changes({ db: path, tables: ['folders'], snapshot: true });
    const lateEvents = late[Symbol.asyncIterator]();
    try {
      const boot = [];
      for (let i = 0; i < 2; i++) {
        const e = (await lateEvents.next()).value as ChangeEvent;
        boot.push([e.op, e.key.id, e.after?.name, e.seq === late.snapshotSeq]);
      }
      assert.deepEqual(boot, [['snapshot', 'f1', 'Inbox (phone)', true], ['snapshot', 'f2', 'Tablet', true]]);
      const writer = new Database(path);
      writer.prepare(`UPDATE folders SET name = 'Tablet 2' WHERE id = 'f2'`).run();
      writer.close();
      const e = (await lateEvents.next()).value as ChangeEvent;
      assert.deepEqual([e.origin, e.op, e.key.id, e.after?.name], ['local', 'update', 'f2', 'Tablet 2']);
    } finally {
      await late.close();
    }

    // No consumer keeps a checkpoint: the hydration writes no snapshot entries nobody would read.
    const laptop = await suite.device('stream-bob', 'laptop');
    assert.ok((await laptop.sync()).hydrated);
    assert.equal(laptop.db.prepare(`SELECT count(*) FROM _syncline_journal WHERE op = 'S'`).pluck().get(), 0n);
    assert.equal(laptop.db.prepare('SELECT count(*) FROM folders').pluck().get(), 2n);
  });
});
