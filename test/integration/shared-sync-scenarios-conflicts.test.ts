import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { SharedSync } from '../../src/device/twoway/shared-sync.js';
import type { ConflictResolver } from '../../src/device/twoway/resolve-conflict.js';
import { deviceRowsText, failingFetch, pastPendingWrites, scenarioSuite, serverRowsText } from '../support/shared-scenarios.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Two devices of one user edit the same rows offline, then sync one after the
 * other: every conflict policy, an app resolver, and changes the server cannot
 * take (constraints) come back as logged conflicts with one final state on both
 * devices and in PostgreSQL.
 */

const uuid = (n: number) => `0190a0a0-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;

/** Without the bookkeeping fields, so records compare whole. */
async function conflictsOf(device: SharedSync) {
  return (await device.conflicts()).map(({ id: _id, resolvedAt: _at, message: _message, remoteVersion: _version, ...rest }) => rest);
}

describeEachStore('shared sync scenarios: conflicts', (ctx) => {
  const suite = scenarioSuite(ctx);

  /** Two synced devices of `user` holding what `seed` wrote on the phone. */
  async function twoDevices(user: string, seed: string, laptopOptions: { resolver?: ConflictResolver } = {}): Promise<{ phone: SharedSync; laptop: SharedSync }> {
    const phone = await suite.device(user, 'phone');
    const laptop = await suite.device(user, 'laptop', laptopOptions);
    phone.db.exec(seed);
    await phone.sync();
    await laptop.sync();
    return { phone, laptop };
  }

  /** The same rows on both devices and in PostgreSQL; returns them. */
  async function converged(user: string, devices: SharedSync[], table: string, columns: string[]): Promise<unknown[][]> {
    const server = await serverRowsText(ctx.store, table, user, columns);
    for (const device of devices) {
      assert.deepEqual(deviceRowsText(device, table, columns), server, `${device.source} ${table}`);
      assert.equal(await device.pending(), 0, device.source);
    }
    return server;
  }

  test('server_wins: the change committed first stands; the later device takes it and logs its loss', async () => {
    const user = 'policy-server';
    const { phone, laptop } = await twoDevices(user, `INSERT INTO folders VALUES ('f1', 'Start', NULL), ('f2', 'Other', NULL)`);
    phone.db.exec(`UPDATE folders SET name = 'phone' WHERE id = 'f1'`);
    laptop.db.exec(`UPDATE folders SET name = 'laptop' WHERE id = 'f1'; DELETE FROM folders WHERE id = 'f2'`);
    await phone.sync();
    const report = await laptop.sync();
    assert.equal(report.push.conflicts, 1);
    await phone.sync();
    assert.deepEqual(await converged(user, [phone, laptop], 'folders', ['id', 'name']), [['f1', 'phone']]);
    assert.deepEqual((await conflictsOf(laptop)), [
      { table: 'folders', key: ['f1'], kind: 'version', policy: 'server_wins', winner: 'remote', local: ['f1', 'laptop', null], remote: ['f1', 'phone', null], result: ['f1', 'phone', null] },
    ]);
    assert.deepEqual(await phone.conflicts(), []);
  });

  test('client_wins: the later device wins, a delete included, and the first device takes its rows', async () => {
    const user = 'policy-client';
    const n = uuid(1);
    const { phone, laptop } = await twoDevices(user, `INSERT INTO notes (id, title) VALUES ('${n}', 'n'); INSERT INTO tags VALUES ('${n}', 'red', 'red'), ('${n}', 'gone', 'grey')`);
    phone.db.exec(`UPDATE tags SET color = 'blue' WHERE tag = 'red'; DELETE FROM tags WHERE tag = 'gone'`);
    laptop.db.exec(`UPDATE tags SET color = 'green' WHERE tag = 'red'; UPDATE tags SET color = 'black' WHERE tag = 'gone'`);
    await phone.sync();
    const report = await laptop.sync();
    assert.equal(report.push.conflicts, 2);
    await phone.sync();
    assert.deepEqual(await converged(user, [phone, laptop], 'tags', ['note_id', 'tag', 'color']), [
      [n, 'gone', 'black'],
      [n, 'red', 'green'],
    ]);
    // The device that found the conflict (the later one) logs it; the phone's change was simply overwritten.
    assert.deepEqual(
      (await conflictsOf(laptop)).sort((a, b) => String(a.key[1]).localeCompare(String(b.key[1]))),
      [
        { table: 'tags', key: [n, 'gone'], kind: 'version', policy: 'client_wins', winner: 'local', local: [n, 'gone', 'black'], remote: null, result: [n, 'gone', 'black'] },
        { table: 'tags', key: [n, 'red'], kind: 'version', policy: 'client_wins', winner: 'local', local: [n, 'red', 'green'], remote: [n, 'red', 'blue'], result: [n, 'red', 'green'] },
      ],
    );
    assert.deepEqual(await phone.conflicts(), []);
  });

  test('a row pushed after winning a conflict is not overwritten when the change it beat is pulled later', async () => {
    const user = 'policy-client-later-pull';
    const n = uuid(1);
    const { phone, laptop } = await twoDevices(user, `INSERT INTO notes (id, title) VALUES ('${n}', 'n'); INSERT INTO tags VALUES ('${n}', 'red', 'red')`);
    await laptop.close();
    // The laptop wins the conflict and commits, but the pull after its push fails: it has not seen the phone's bundle yet.
    const flaky = await suite.device(user, 'laptop', { fetch: failingFetch((url) => (url.pathname === '/v1/shared/pull' ? 'before' : undefined)) });
    phone.db.exec(`UPDATE tags SET color = 'blue'`);
    flaky.db.exec(`UPDATE tags SET color = 'green'`);
    await phone.sync();
    await assert.rejects(flaky.sync(), /simulated/);
    flaky.db.exec(`UPDATE tags SET color = 'purple'`);
    await flaky.close();

    const again = await suite.device(user, 'laptop');
    await again.sync();
    await phone.sync();
    assert.deepEqual(await converged(user, [phone, again], 'tags', ['note_id', 'tag', 'color']), [[n, 'red', 'purple']]);
    assert.deepEqual(
      (await conflictsOf(again)).map((c) => [c.winner, c.local?.[2], c.remote?.[2]]),
      [['local', 'green', 'blue']],
      'settled once, when the push met the phone\'s change; not again when the pull brought it',
    );
  });

  test('last_writer_wins: the later write wins whichever device pushes first', async () => {
    const user = 'policy-lww';
    // The keys sort opposite to the write order on the laptop, so stamping in key order would misorder them.
    const early = uuid(0x200);
    const late = uuid(0x100);
    const { phone, laptop } = await twoDevices(user, `INSERT INTO notes (id, title) VALUES ('${early}', 'seed'), ('${late}', 'seed')`);
    laptop.db.prepare('UPDATE notes SET title = ? WHERE id = ?').run('laptop, first write', early);
    await pastPendingWrites(laptop);
    phone.db.prepare('UPDATE notes SET title = ? WHERE id = ?').run('phone, second write', early);
    phone.db.prepare('UPDATE notes SET title = ? WHERE id = ?').run('phone, first write', late);
    await pastPendingWrites(phone);
    laptop.db.prepare('UPDATE notes SET title = ? WHERE id = ?').run('laptop, second write', late);

    await phone.sync(); // the phone pushes first: its write to `early` is the later one, to `late` the earlier one
    const report = await laptop.sync();
    assert.equal(report.push.conflicts, 2);
    await phone.sync();
    assert.deepEqual(await converged(user, [phone, laptop], 'notes', ['id', 'title']), [
      [late, 'laptop, second write'],
      [early, 'phone, second write'],
    ]);
    const records = (await conflictsOf(laptop));
    assert.equal(records.length, 2);
    const byKey = new Map(records.map((r) => [r.key[0], r]));
    assert.deepEqual(
      { policy: byKey.get(early)!.policy, winner: byKey.get(early)!.winner, local: byKey.get(early)!.local?.[2], remote: byKey.get(early)!.remote?.[2] },
      { policy: 'last_writer_wins', winner: 'remote', local: 'laptop, first write', remote: 'phone, second write' },
    );
    assert.deepEqual(
      { policy: byKey.get(late)!.policy, winner: byKey.get(late)!.winner, local: byKey.get(late)!.local?.[2], remote: byKey.get(late)!.remote?.[2] },
      { policy: 'last_writer_wins', winner: 'local', local: 'laptop, second write', remote: 'phone, first write' },
    );
  });

  test('merge_columns: columns changed on one side merge; a column changed on both goes to the tiebreak (server_wins)', async () => {
    const user = 'policy-merge';
    const { phone, laptop } = await twoDevices(user, `INSERT INTO profiles VALUES (1, 'Me', 'light', 'en')`);
    phone.db.exec(`UPDATE profiles SET theme = 'dark'`);
    laptop.db.exec(`UPDATE profiles SET lang = 'fr'`);
    await phone.sync();
    await laptop.sync();
    await phone.sync();
    assert.deepEqual(await converged(user, [phone, laptop], 'profiles', ['user_no', 'display', 'theme', 'lang']), [['1', 'Me', 'dark', 'fr']]);
    assert.deepEqual((await conflictsOf(laptop)), [
      { table: 'profiles', key: [1n], kind: 'version', policy: 'merge_columns', winner: 'merged', local: [1n, 'Me', 'light', 'fr'], remote: [1n, 'Me', 'dark', 'en'], result: [1n, 'Me', 'dark', 'fr'] },
    ]);

    phone.db.exec(`UPDATE profiles SET display = 'Phone', theme = 'light'`);
    laptop.db.exec(`UPDATE profiles SET display = 'Laptop', lang = 'de'`);
    await phone.sync();
    await laptop.sync();
    await phone.sync();
    assert.deepEqual(await converged(user, [phone, laptop], 'profiles', ['user_no', 'display', 'theme', 'lang']), [['1', 'Phone', 'light', 'de']]);
    const second = (await conflictsOf(laptop))[1];
    assert.deepEqual(second, {
      table: 'profiles',
      key: [1n],
      kind: 'version',
      policy: 'merge_columns',
      winner: 'merged',
      local: [1n, 'Laptop', 'dark', 'de'],
      remote: [1n, 'Phone', 'light', 'fr'],
      result: [1n, 'Phone', 'light', 'de'],
    });
    assert.deepEqual(await phone.conflicts(), []);
  });

  test('a custom resolver decides the cases it knows; the rest go to the table policy', async () => {
    const user = 'policy-custom';
    const joinNames: ConflictResolver = (conflict) => {
      if (conflict.table.name !== 'folders' || !conflict.local.row || !conflict.remote.row) return undefined;
      const names = [conflict.local.row[1], conflict.remote.row[1]].map(String).sort();
      return { winner: 'merged', row: [conflict.key[0]!, names.join(' + '), conflict.remote.row[2]!] };
    };
    const { phone, laptop } = await twoDevices(user, `INSERT INTO folders VALUES ('f', 'Start', NULL); INSERT INTO profiles VALUES (7, 'x', 'y', 'z')`, { resolver: joinNames });
    phone.db.exec(`UPDATE folders SET name = 'phone'; UPDATE profiles SET display = 'from phone'`);
    laptop.db.exec(`UPDATE folders SET name = 'laptop'; UPDATE profiles SET display = 'from laptop'`);
    await phone.sync();
    await laptop.sync();
    await phone.sync();
    assert.deepEqual(await converged(user, [phone, laptop], 'folders', ['id', 'name']), [['f', 'laptop + phone']]);
    assert.deepEqual(await converged(user, [phone, laptop], 'profiles', ['user_no', 'display']), [['7', 'from phone']]);
    assert.deepEqual(
      (await conflictsOf(laptop)).map((c) => [c.table, c.policy, c.winner, c.result]),
      [
        ['folders', 'custom', 'merged', ['f', 'laptop + phone', null]],
        ['profiles', 'merge_columns', 'remote', [7n, 'from phone', 'y', 'z']],
      ],
    );
  });

  test('rows the server cannot take come back as structured conflicts; the rest of the push commits', async () => {
    const user = 'constraints';
    // The app made emails without NOT NULL on address, so the device accepts a row PostgreSQL cannot hold.
    const file = new Database(suite.path(user, 'phone'));
    file.exec('CREATE TABLE emails (id INTEGER PRIMARY KEY, address TEXT)');
    file.close();
    const { phone, laptop } = await twoDevices(user, `INSERT INTO folders VALUES ('keep', 'Keep', NULL), ('doomed', 'Doomed', NULL)`);
    laptop.db.exec(`DELETE FROM folders WHERE id = 'doomed'`);
    await laptop.sync();

    // The phone has not pulled the delete: its note in 'doomed' is fine locally, not on the server.
    phone.db.exec(`
      INSERT INTO emails VALUES (1, 'a@example.com'), (2, NULL);
      INSERT INTO notes (id, folder_id, title) VALUES ('${uuid(1)}', 'keep', 'fine'), ('${uuid(2)}', 'doomed', 'orphan');
    `);
    const report = await phone.sync();
    assert.equal(report.push.conflicts, 2);
    assert.equal(report.push.rows, 2, 'the other rows of the push committed');

    const records = (await conflictsOf(phone));
    assert.equal(records.length, 2);
    const email = records.find((r) => r.table === 'emails')!;
    assert.ok(email.kind === 'invalid' || email.kind === 'not_null', email.kind);
    assert.deepEqual({ ...email, kind: 'invalid' }, { table: 'emails', key: [2n], kind: 'invalid', policy: 'rejected', winner: 'remote', local: [2n, null], remote: null, result: null });
    const note = records.find((r) => r.table === 'notes')!;
    assert.deepEqual(note, { table: 'notes', key: [uuid(2)], kind: 'foreign_key', policy: 'rejected', winner: 'remote', local: [uuid(2), 'doomed', 'orphan', null, null, null], remote: null, result: null });
    assert.match((await phone.conflicts()).find((r) => r.table === 'notes')!.message ?? '', /folders/);
    assert.match((await phone.conflicts()).find((r) => r.table === 'emails')!.message ?? '', /address/);

    await laptop.sync();
    assert.deepEqual(await converged(user, [phone, laptop], 'emails', ['id', 'address']), [['1', 'a@example.com']]);
    assert.deepEqual(await converged(user, [phone, laptop], 'notes', ['id', 'folder_id', 'title']), [[uuid(1), 'keep', 'fine']]);
    assert.deepEqual(await converged(user, [phone, laptop], 'folders', ['id']), [['keep']]);
  });
});
