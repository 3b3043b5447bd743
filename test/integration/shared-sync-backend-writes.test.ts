import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SharedRoutes } from '../../src/protocol/shared-sync.js';
import type { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { sqlState } from '../../src/cloud/store/store.js';
import { isTransportError } from '../../src/transport/transport.js';
import { userToken } from '../support/shared-fixtures.js';
import { deviceRowsText, scenarioSuite, serverRowsText } from '../support/shared-scenarios.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Plain SQL into shared tables (what a backend's ORM, psql or a cron job does) is
 * captured by triggers into bundles: devices already in sync pull it, conflict
 * detection sees it, and Syncline's own writes are not captured a second time.
 */

const uuid = (n: number) => `0190a0a0-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;

interface Bundle {
  bundle_seq: string;
  source: string;
  row_count: number;
}

describeEachStore('shared sync: writes by a backend in plain SQL', (ctx) => {
  const suite = scenarioSuite(ctx);
  const sql = (text: string, params: unknown[] = []) => ctx.store.query(text, params);
  const bundles = async (scope: string) =>
    (await sql('SELECT bundle_seq::text AS bundle_seq, source, row_count FROM sync_bundles WHERE scope = $1 ORDER BY sync_bundles.bundle_seq', [scope])).rows as unknown as Bundle[];

  async function equalsServer(user: string, device: SharedSync, table: string, columns: string[]): Promise<unknown[][]> {
    const server = await serverRowsText(ctx.store, table, user, columns);
    assert.deepEqual(deviceRowsText(device, table, columns), server, `${device.source} ${table}`);
    return server;
  }

  test('insert, update and delete of every key type reach a device already in sync, one bundle per transaction', async () => {
    const user = 'backend-keys';
    const phone = await suite.device(user, 'phone');
    await phone.sync();
    const at = { scope: user };
    await ctx.store.transaction(async (tx) => {
      // Only the table's own columns and the scope: Syncline's columns fill themselves.
      await tx.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, 'f1', 'Inbox'), ($1, 'f2', 'Work')`, [at.scope]);
      await tx.query(
        `INSERT INTO syncline_shared.notes (_syncline_scope, id, folder_id, title, stars, score, attachment) VALUES ($1, $2, 'f1', 'hi "there"', 9007199254740993, 0.1, '\\x00ff'), ($1, $3, 'f2', E'line\\nnext', -3, -0.0, NULL)`,
        [at.scope, uuid(1), uuid(2)],
      );
      await tx.query(`INSERT INTO syncline_shared.tags (_syncline_scope, note_id, tag, color) VALUES ($1, $2, 'red', 'ff0000'), ($1, $2, 'blue', NULL)`, [at.scope, uuid(1)]);
      await tx.query(`INSERT INTO syncline_shared.profiles (_syncline_scope, user_no, display) VALUES ($1, -9007199254740993, 'big'), ($1, 7, 'seven')`, [at.scope]);
      await tx.query(`INSERT INTO syncline_shared.blobs (_syncline_scope, k, v) VALUES ($1, '\\x0001', '\\xbeef'), ($1, '\\x', '\\x')`, [at.scope]);
    });
    assert.deepEqual(await bundles(user), [{ bundle_seq: '1', source: 'backend', row_count: 10 }]);
    const first = await phone.sync();
    assert.equal(first.pull.bundles, 1);
    await equalsServer(user, phone, 'notes', ['id', 'folder_id', 'title', 'stars', 'score', 'attachment']);
    await equalsServer(user, phone, 'tags', ['note_id', 'tag', 'color']);
    await equalsServer(user, phone, 'profiles', ['user_no', 'display']);
    await equalsServer(user, phone, 'blobs', ['k', 'v']);

    await sql(`UPDATE syncline_shared.notes SET title = 'edited', stars = stars + 1 WHERE _syncline_scope = $1 AND id = $2`, [user, uuid(1)]);
    await sql(`UPDATE syncline_shared.tags SET tag = 'green' WHERE _syncline_scope = $1 AND tag = 'blue'`, [user]);
    await sql(`DELETE FROM syncline_shared.profiles WHERE _syncline_scope = $1 AND user_no = 7`, [user]);
    await sql(`DELETE FROM syncline_shared.blobs WHERE _syncline_scope = $1 AND k = '\\x0001'`, [user]);
    await sql(`UPDATE syncline_shared.blobs SET v = '\\x01' WHERE _syncline_scope = $1`, [user]);
    assert.deepEqual((await bundles(user)).map((b) => [b.bundle_seq, b.row_count]), [['1', 10], ['2', 1], ['3', 2], ['4', 1], ['5', 1], ['6', 1]]);
    const second = await phone.sync();
    assert.equal(second.pull.bundles, 5);
    assert.deepEqual(await equalsServer(user, phone, 'notes', ['id', 'title', 'stars']), [[uuid(1), 'edited', '9007199254740994'], [uuid(2), 'line\nnext', '-3']]);
    assert.deepEqual(await equalsServer(user, phone, 'tags', ['note_id', 'tag', 'color']), [[uuid(1), 'green', null], [uuid(1), 'red', 'ff0000']]);
    assert.deepEqual(await equalsServer(user, phone, 'profiles', ['user_no', 'display']), [['-9007199254740993', 'big']]);
    assert.deepEqual(await equalsServer(user, phone, 'blobs', ['k', 'v']), [['', '01']]);

    // The device edits a row the backend wrote: the keys it computes name the same rows.
    phone.db.exec(`UPDATE notes SET title = 'from phone' WHERE stars = -3; DELETE FROM tags WHERE tag = 'red'`);
    const push = await phone.sync();
    assert.equal(push.push.conflicts, 0);
    assert.deepEqual(await serverRowsText(ctx.store, 'notes', user, ['title']), [['edited'], ['from phone']]);
    assert.deepEqual(await serverRowsText(ctx.store, 'tags', user, ['tag']), [['green']]);
    // The device push is one bundle, not captured a second time by the triggers.
    assert.deepEqual((await bundles(user)).slice(6).map((b) => [b.bundle_seq, b.source, b.row_count]), [['7', 'phone', 2]]);
  });

  test('one transaction is one gap-free bundle per scope it touched; a rollback leaves no gap', async () => {
    const [a, b] = ['backend-tx-a', 'backend-tx-b'];
    await ctx.store.transaction(async (tx) => {
      await tx.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, 'x', 'one')`, [a]);
      await tx.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, 'x', 'one')`, [b]);
      await tx.query(`UPDATE syncline_shared.folders SET name = 'two' WHERE _syncline_scope = $1`, [a]);
      // Moving a row to another scope deletes it there and inserts it here.
      await tx.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, 'y', 'moving')`, [a]);
      await tx.query(`UPDATE syncline_shared.folders SET _syncline_scope = $2 WHERE _syncline_scope = $1 AND id = 'y'`, [a, b]);
    });
    await assert.rejects(
      ctx.store.transaction(async (tx) => {
        await tx.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, 'z', 'gone')`, [a]);
        throw new Error('the backend changed its mind');
      }),
      /changed its mind/,
    );
    await sql(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) VALUES ($1, 'w', 'after')`, [a]);
    assert.deepEqual((await bundles(a)).map((x) => [x.bundle_seq, x.row_count]), [['1', 4], ['2', 1]]);
    assert.deepEqual((await bundles(b)).map((x) => [x.bundle_seq, x.row_count]), [['1', 2]]);
    const { rows } = await sql(`SELECT bundle_seq::text AS s, ordinal, op::text AS op, key::text AS key FROM sync_bundle_changes WHERE scope = $1 ORDER BY bundle_seq, ordinal`, [a]);
    assert.deepEqual(
      rows.map((r) => Object.values(r)),
      [['1', 0, 'U', '["x"]'], ['1', 1, 'U', '["x"]'], ['1', 2, 'U', '["y"]'], ['1', 3, 'D', '["y"]'], ['2', 0, 'U', '["w"]']],
    );
    const device = await suite.device(b, 'tablet');
    await device.sync();
    assert.deepEqual(deviceRowsText(device, 'folders', ['id', 'name']), [['x', 'one'], ['y', 'moving']]);
  });

  test('a statement larger than a pull page reaches a device whole; the chunks of one bundle keep their order', async () => {
    const user = 'backend-big';
    const phone = await suite.device(user, 'phone', { chunkRows: 64 });
    await phone.sync();
    await ctx.store.transaction(async (tx) => {
      await tx.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) SELECT $1, 'f' || lpad(i::text, 4, '0'), 'n' || i FROM generate_series(1, 300) i`, [user]);
      await tx.query(`UPDATE syncline_shared.folders SET name = 'renamed' WHERE _syncline_scope = $1 AND id <= 'f0100'`, [user]);
      await tx.query(`DELETE FROM syncline_shared.folders WHERE _syncline_scope = $1 AND id > 'f0290'`, [user]);
    });
    assert.deepEqual((await bundles(user)).map((b) => [b.bundle_seq, b.row_count]), [['1', 410]]);
    const { rows } = await sql(`SELECT ordinal, op::text AS op FROM sync_bundle_changes WHERE scope = $1 ORDER BY ordinal`, [user]);
    assert.deepEqual(rows.map((r) => r.ordinal), [...Array(410).keys()]);
    assert.deepEqual([...new Set(rows.map((r) => r.op))], ['U', 'D']);
    // Pages of 64 rows end inside the statements' chunks; the device applies the bundle once it holds all of it.
    assert.deepEqual((await phone.sync()).pull, { bundles: 1, rows: 410 });
    const server = await equalsServer(user, phone, 'folders', ['id', 'name']);
    assert.equal(server.length, 290);
    assert.deepEqual([server[0], server[100], server[289]], [['f0001', 'renamed'], ['f0101', 'n101'], ['f0290', 'n290']]);
  });

  test('a NULL scope is refused by a constraint; TRUNCATE is refused, as no row trigger would see it', async () => {
    await assert.rejects(sql(`INSERT INTO syncline_shared.folders (id, name) VALUES ('n', 'no scope')`), (e: unknown) => sqlState(e) === '23502');
    await assert.rejects(sql(`TRUNCATE syncline_shared.catalog`), (e: unknown) => sqlState(e) === '0A000' && /DELETE them instead/.test(String(e)));
  });

  test('a device that edited a row offline conflicts with the later backend write; the policy decides and the loser is logged', async () => {
    const user = 'backend-conflict';
    const phone = await suite.device(user, 'phone');
    phone.db.exec(`INSERT INTO folders VALUES ('f1', 'Start', NULL); INSERT INTO notes (id, folder_id, title) VALUES ('${uuid(5)}', 'f1', 'n')`);
    phone.db.exec(`INSERT INTO tags VALUES ('${uuid(5)}', 't', 'plain')`);
    await phone.sync();
    // Offline edits on the device, then the backend writes the same rows.
    phone.db.exec(`UPDATE folders SET name = 'phone' WHERE id = 'f1'; UPDATE tags SET color = 'phone'`);
    await sql(`UPDATE syncline_shared.folders SET name = 'backend' WHERE _syncline_scope = $1 AND id = 'f1'`, [user]);
    await sql(`UPDATE syncline_shared.tags SET color = 'backend' WHERE _syncline_scope = $1`, [user]);
    const report = await phone.sync();
    assert.equal(report.push.conflicts, 2);
    await phone.sync();
    // folders is server_wins: the backend's row stands; tags is client_wins: the device's.
    assert.deepEqual(await equalsServer(user, phone, 'folders', ['id', 'name']), [['f1', 'backend']]);
    assert.deepEqual(await equalsServer(user, phone, 'tags', ['tag', 'color']), [['t', 'phone']]);
    const logged = (await phone.conflicts()).map((c) => [c.table, c.policy, c.winner, c.local, c.remote]);
    assert.deepEqual(logged, [
      ['folders', 'server_wins', 'remote', ['f1', 'phone', null], ['f1', 'backend', null]],
      ['tags', 'client_wins', 'local', [uuid(5), 't', 'phone'], [uuid(5), 't', 'backend']],
    ]);
    assert.equal(await phone.pending(), 0);
  });

  test('a backend write wakes event streams', async () => {
    const user = 'backend-wake';
    const controller = new AbortController();
    const response = await fetch(`${suite.server.url}${SharedRoutes.events}`, {
      headers: { authorization: `Bearer ${await userToken(user)}`, 'x-syncline-source': 'watcher' },
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const nextEvent = async () => {
      for (;;) {
        const end = text.indexOf('\n\n');
        if (end >= 0) {
          const event = text.slice(0, end);
          text = text.slice(end + 2);
          if (event.startsWith('event: bundle')) return JSON.parse(event.split('data: ')[1]!) as { head_seq: string };
          continue;
        }
        const { value } = await reader.read();
        text += decoder.decode(value);
      }
    };
    assert.deepEqual(await nextEvent(), { head_seq: '0' });
    await sql(`INSERT INTO syncline_shared.catalog (_syncline_scope, sku, price) VALUES ($1, 'sku-1', 10.5)`, [user]);
    assert.deepEqual(await nextEvent(), { head_seq: '1' });
    controller.abort();
  });

  test('concurrent backend transactions and device pushes on one scope: gap-free bundle_seq in commit order', async () => {
    const user = 'backend-race';
    const phone = await suite.device(user, 'phone');
    const ids = ['r0', 'r1', 'r2', 'r3'];
    phone.db.exec(`INSERT INTO folders VALUES ${ids.map((id) => `('${id}', 'seed', NULL)`).join(', ')}`);
    await phone.sync();
    const writer = async (w: number) => {
      for (let i = 0; i < 8; i++) {
        await ctx.store.transaction(async (tx) => {
          // Rows in different orders per writer: PostgreSQL may pick a deadlock victim, which retries.
          // Detected after 50 ms of waiting instead of the default 1 s (the check only runs sooner; a
          // wait that is no deadlock goes on waiting), so each deadlock costs the test no idle second.
          await tx.query(`SET LOCAL deadlock_timeout = '50ms'`);
          for (const id of w % 2 === 0 ? ids : [...ids].reverse()) {
            await tx.query(`UPDATE syncline_shared.folders SET name = $3 WHERE _syncline_scope = $1 AND id = $2`, [user, id, `w${w}-${i}`]);
          }
        }).catch((error: unknown) => {
          if (sqlState(error) !== '40P01') throw error;
        });
      }
    };
    const pusher = async () => {
      for (let i = 0; i < 6; i++) {
        phone.db.exec(`UPDATE folders SET name = 'phone-${i}' WHERE id IN ('r1', 'r2'); INSERT OR REPLACE INTO folders VALUES ('p${i}', 'new', NULL)`);
        // While the backends deadlock among themselves a queued push can lose every round for ten
        // seconds; it is then answered 503 (never 500) and retried, as the device loop does.
        for (;;) {
          try {
            await phone.sync();
            break;
          } catch (error) {
            if (!isTransportError(error) || error.status !== 503) throw error;
          }
        }
      }
    };
    await Promise.all([writer(0), writer(1), writer(2), pusher()]);
    await phone.sync();
    const seqs = (await bundles(user)).map((b) => Number(b.bundle_seq));
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
    // Replaying every bundle in bundle_seq order gives exactly what the table holds: seq order is commit order.
    const { rows } = await sql(`SELECT op::text AS op, key::text AS key, row::text AS row FROM sync_bundle_changes WHERE scope = $1 AND tbl = 'folders' ORDER BY bundle_seq, ordinal`, [user]);
    const replayed = new Map<string, string>();
    for (const r of rows as { op: string; key: string; row: string }[]) {
      if (r.op === 'D') replayed.delete(r.key);
      else replayed.set(r.key, JSON.parse(r.row)[1] as string);
    }
    const table = await serverRowsText(ctx.store, 'folders', user, ['id', 'name']);
    assert.deepEqual([...replayed].map(([k, name]) => [JSON.parse(k)[0], name]).sort(), table.map((r) => [...r]).sort());
    await equalsServer(user, phone, 'folders', ['id', 'name']);
  });
});
