import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { CloudServer } from '../../src/cloud/server.js';
import type { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { formatHlc } from '../../src/protocol/hlc.js';
import { SOURCE_HEADER, type PullAnswer, type PushAnswer, type SnapshotAnswer } from '../../src/protocol/shared-sync.js';
import { hs256Token } from '../support/jwt.js';
import { ADMIN_TOKEN, JWT_SECRET, openSharedDevice, serverRows, startSharedServer, userToken } from '../support/shared-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Scopes keep users apart whatever a device sends: the scope comes from the
 * verified token only, every read and write is filtered by it, and foreign keys
 * include it. Raw HTTP cases use fetch directly, as a hostile client would.
 */

interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
}

const FOLDER_COLUMNS = ['id', 'name', 'parent_id'];
const NOTE_COLUMNS = ['id', 'folder_id', 'title'];
const PROFILE_COLUMNS = ['user_no', 'display', 'theme', 'lang'];

const hlc = (source: string) => formatHlc({ ms: Date.now(), counter: 0, source });

function folderRow(source: string, id: string, name: string) {
  return { table: 'folders', op: 'upsert', key: [id], row: [id, name, null], hlc: hlc(source) };
}

function pushBody(rows: unknown[], extra: Record<string, unknown> = {}) {
  return { format_version: 1, source_bundle_id: randomUUID(), base_seq: '0', row_count: rows.length, rows, ...extra };
}

describeEachStore('shared sync scope isolation', (ctx) => {
  let server: CloudServer;
  let dir: ReturnType<typeof tempDir>;
  const devices: SharedSync[] = [];
  // Distinct per store kind only for readability of failures; each kind has its own store.
  const alice = `alice-${ctx.kind}`;
  const bob = `bob-${ctx.kind}`;
  let aliceToken: string;
  let bobToken: string;

  async function call<T = Record<string, unknown>>(
    method: string,
    path: string,
    options: { token?: string | null; source?: string | null; body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string> } = {},
  ): Promise<Answer<T>> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? aliceToken : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const source = options.source === undefined ? 'alice-raw' : options.source;
    if (source !== null) headers[SOURCE_HEADER] = source;
    let body: string | Uint8Array | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const response = await fetch(`${server.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
  }

  async function bundleCount(scope: string): Promise<number> {
    const { rows } = await ctx.store.query<{ n: string }>('SELECT count(*)::text AS n FROM sync_bundles WHERE scope = $1', [scope]);
    return Number(rows[0]!.n);
  }

  async function rowCountAll(): Promise<number> {
    const { rows } = await ctx.store.query<{ n: string }>('SELECT count(*)::text AS n FROM sync_bundle_rows');
    return Number(rows[0]!.n);
  }

  async function device(user: string, name: string): Promise<SharedSync> {
    const opened = await openSharedDevice(server, dir.path, user, name);
    devices.push(opened);
    return opened;
  }

  async function snapshotRows(token: string, source: string): Promise<{ snapshot: SnapshotAnswer; chunks: Record<string, unknown>[] }> {
    const created = await call<SnapshotAnswer>('POST', '/v1/shared/snapshots', { token, source });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const chunks: Record<string, unknown>[] = [];
    for (let i = 0; ; i++) {
      const chunk = await call('GET', `/v1/shared/snapshots/${created.body.snapshot_id}/chunks/${i}`, { token, source });
      assert.equal(chunk.status, 200, JSON.stringify(chunk.body));
      if ('end' in chunk.body) break;
      chunks.push(chunk.body);
      assert.ok(i < 1000, 'a snapshot ends');
    }
    return { snapshot: created.body, chunks };
  }

  before(async () => {
    dir = tempDir('syncline-isolation-');
    server = await startSharedServer(ctx.store);
    aliceToken = await userToken(alice);
    bobToken = await userToken(bob);
    // Bob's data: a folder tree, a note in it, a profile. Alice's scope starts empty.
    const bobPhone = await device(bob, 'phone');
    bobPhone.db.prepare(`INSERT INTO folders (id, name, parent_id) VALUES ('f1', 'bob inbox', NULL), ('shared-id', 'bob private', 'f1')`).run();
    bobPhone.db.prepare(`INSERT INTO notes (id, folder_id, title, stars) VALUES ('0190a0a0-0000-7000-8000-0000000000b1', 'shared-id', 'bob secret', 5)`).run();
    bobPhone.db.prepare(`INSERT INTO profiles (user_no, display, theme, lang) VALUES (1, 'Bob', 'dark', 'en')`).run();
    const report = await bobPhone.sync();
    assert.equal(report.push.rows, 4);
  });

  after(async () => {
    for (const opened of devices) await opened.close();
    await server.stop();
    dir.remove();
  });

  async function bobUnchanged(): Promise<void> {
    assert.deepEqual(await serverRows(ctx.store, 'folders', bob, FOLDER_COLUMNS), [
      ['f1', 'bob inbox', null],
      ['shared-id', 'bob private', 'f1'],
    ]);
    assert.deepEqual(await serverRows(ctx.store, 'notes', bob, NOTE_COLUMNS), [['0190a0a0-0000-7000-8000-0000000000b1', 'shared-id', 'bob secret']]);
    assert.deepEqual(await serverRows(ctx.store, 'profiles', bob, PROFILE_COLUMNS), [['1', 'Bob', 'dark', 'en']]);
  }

  test("another user's rows never reach a device: not by sync, pull or snapshot", async () => {
    const alicePhone = await device(alice, 'reader');
    const report = await alicePhone.sync();
    assert.equal(report.pull.rows, 0);
    assert.equal(report.hydrated?.rows ?? 0, 0);
    for (const table of ['folders', 'notes', 'profiles']) {
      assert.deepEqual(alicePhone.db.prepare(`SELECT * FROM "${table}"`).all(), [], `${table} reached alice`);
    }

    const pulled = await call<PullAnswer>('GET', '/v1/shared/pull?after=0&limit=1000');
    assert.equal(pulled.status, 200);
    assert.deepEqual(pulled.body.bundles, []);
    // Query parameters that name a scope or user are not read.
    for (const query of [`scope=${bob}`, `user=${bob}`, `sub=${bob}`, `_syncline_scope=${bob}`]) {
      const forged = await call<PullAnswer>('GET', `/v1/shared/pull?after=0&${query}`);
      assert.ok(forged.status === 200 || forged.status === 400, `${query}: ${forged.status}`);
      if (forged.status === 200) assert.deepEqual(forged.body.bundles, [], `${query} reached bob's bundles`);
    }
    const { snapshot, chunks } = await snapshotRows(aliceToken, 'alice-raw');
    assert.equal(snapshot.snapshot_seq, '0');
    assert.deepEqual(chunks, []);

    // Bob, for contrast, sees his own rows the same ways.
    const bobPull = await call<PullAnswer>('GET', '/v1/shared/pull?after=0&limit=1000', { token: bobToken, source: 'bob-raw' });
    assert.equal(bobPull.body.bundles.flatMap((b) => b.rows).length, 4);
    const bobSnapshot = await snapshotRows(bobToken, 'bob-raw');
    assert.equal(bobSnapshot.chunks.flatMap((c) => c.rows as unknown[]).length, 4);
  });

  test("pushing keys that exist in another scope makes the pusher's own rows and leaves the other's alone", async () => {
    const aliceTablet = await device(alice, 'tablet');
    aliceTablet.db.prepare(`INSERT INTO folders (id, name, parent_id) VALUES ('f1', 'alice inbox', NULL), ('shared-id', 'alice own', NULL)`).run();
    aliceTablet.db.prepare(`INSERT INTO profiles (user_no, display, theme, lang) VALUES (1, 'Alice', 'light', 'fr')`).run();
    const report = await aliceTablet.sync();
    assert.equal(report.push.rows, 3);
    assert.equal(report.push.conflicts, 0, 'a key in another scope is no conflict');
    assert.deepEqual(await serverRows(ctx.store, 'folders', alice, FOLDER_COLUMNS), [
      ['f1', 'alice inbox', null],
      ['shared-id', 'alice own', null],
    ]);
    await bobUnchanged();

    // Deleting those keys removes Alice's rows only.
    aliceTablet.db.prepare(`DELETE FROM folders`).run();
    aliceTablet.db.prepare(`DELETE FROM profiles`).run();
    await aliceTablet.sync();
    assert.deepEqual(await serverRows(ctx.store, 'folders', alice, FOLDER_COLUMNS), []);
    await bobUnchanged();

    // Bob's device, syncing again, sees nothing of it.
    const bobLaptop = await device(bob, 'laptop');
    await bobLaptop.sync();
    assert.deepEqual(bobLaptop.db.prepare('SELECT id, name FROM folders ORDER BY id').raw().all(), [
      ['f1', 'bob inbox'],
      ['shared-id', 'bob private'],
    ]);
  });

  test('forged scope or user fields in bodies are refused by the strict schemas; nothing is stored', async () => {
    const beforeBob = await bundleCount(bob);
    const beforeAlice = await bundleCount(alice);
    const row = folderRow('alice-raw', 'forged', 'forged');
    const forgeries: [string, unknown][] = [
      ['scope in the push', pushBody([row], { scope: bob })],
      ['user in the push', pushBody([row], { user: bob })],
      ['sub in the push', pushBody([row], { sub: bob })],
      ['source in the push', pushBody([row], { source: 'bob-phone' })],
      ['scope in a row', pushBody([{ ...row, scope: bob }])],
      ['_syncline_scope in a row', pushBody([{ ...row, _syncline_scope: bob }])],
      ['version in a row', pushBody([{ ...row, version: '1' }])],
      ['source in a row', pushBody([{ ...row, source: 'phone' }])],
    ];
    for (const [what, body] of forgeries) {
      const answer = await call('POST', '/v1/shared/push', { body });
      assert.equal(answer.status, 400, `${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error, 'invalid_batch', what);
    }
    // A chunk with a forged field is refused the same way.
    const begun = await call<PushAnswer>('POST', '/v1/shared/push', { body: { ...pushBody([row]), rows: undefined } });
    assert.equal(begun.status, 200);
    assert.equal(begun.body.status, 'open');
    const sessionId = (begun.body as { session_id: string }).session_id;
    const chunk = await call('PUT', `/v1/shared/push/${sessionId}/chunks/0`, { body: { rows: [row], scope: bob } });
    assert.equal(chunk.status, 400);
    assert.equal((await call('DELETE', `/v1/shared/push/${sessionId}`)).status, 204);

    // Headers that might name a scope are not read either: the push lands in Alice's scope.
    const headed = await call<PushAnswer>('POST', '/v1/shared/push', { body: pushBody([folderRow('alice-raw', 'by-header', 'x')]), headers: { 'x-syncline-scope': bob, 'x-syncline-user': bob } });
    assert.equal(headed.status, 200);
    assert.equal(headed.body.status, 'committed');
    assert.equal(await bundleCount(bob), beforeBob);
    assert.equal(await bundleCount(alice), beforeAlice + 1);
    assert.deepEqual(
      (await serverRows(ctx.store, 'folders', alice, FOLDER_COLUMNS)).filter((r) => r[0] === 'forged'),
      [],
    );
    await bobUnchanged();
  });

  test("another scope's snapshots and push sessions are not found by id", async () => {
    const bobSnapshot = await call<SnapshotAnswer>('POST', '/v1/shared/snapshots', { token: bobToken, source: 'bob-raw' });
    assert.equal(bobSnapshot.status, 200);
    const snapshotId = bobSnapshot.body.snapshot_id;
    const aliceReads = await call('GET', `/v1/shared/snapshots/${snapshotId}/chunks/0`);
    assert.equal(aliceReads.status, 404, JSON.stringify(aliceReads.body));
    assert.equal(aliceReads.body.error, 'not_found');
    assert.ok(!JSON.stringify(aliceReads.body).includes('bob inbox'));
    // Alice's drop is a no-op for Bob's snapshot.
    assert.equal((await call('DELETE', `/v1/shared/snapshots/${snapshotId}`)).status, 204);
    const bobReads = await call('GET', `/v1/shared/snapshots/${snapshotId}/chunks/0`, { token: bobToken, source: 'bob-raw' });
    assert.equal(bobReads.status, 200);
    assert.ok(JSON.stringify(bobReads.body).includes('bob inbox'));

    const rows = [folderRow('bob-raw', 'bob-chunked', 'from a session')];
    const begun = await call<PushAnswer>('POST', '/v1/shared/push', { token: bobToken, source: 'bob-raw', body: { ...pushBody(rows), rows: undefined } });
    assert.equal(begun.body.status, 'open');
    const sessionId = (begun.body as { session_id: string }).session_id;
    const intrusions: [string, string, unknown?][] = [
      ['PUT', `/v1/shared/push/${sessionId}/chunks/0`, { rows: [folderRow('alice-raw', 'bob-chunked', 'hijacked')] }],
      ['POST', `/v1/shared/push/${sessionId}/commit`],
      ['DELETE', `/v1/shared/push/${sessionId}`],
    ];
    for (const [method, path, body] of intrusions) {
      const answer = await call(method, path, body === undefined ? {} : { body });
      assert.equal(answer.status, 404, `${method} ${path}: ${answer.status}`);
      assert.equal(answer.body.error, 'not_found');
    }
    // Another device of Bob's own is no more welcome in that session.
    const otherDevice = await call('POST', `/v1/shared/push/${sessionId}/commit`, { token: bobToken, source: 'bob-other' });
    assert.equal(otherDevice.status, 404);
    // Unguessable or malformed ids are simply not found.
    for (const id of ['not-a-uuid', randomUUID(), "'; DROP TABLE sync_push_sessions; --"]) {
      assert.equal((await call('GET', `/v1/shared/snapshots/${encodeURIComponent(id)}/chunks/0`)).status, 404, id);
      assert.equal((await call('POST', `/v1/shared/push/${encodeURIComponent(id)}/commit`)).status, 404, id);
    }
    // Bob's session is intact: his chunk and commit go through.
    assert.equal((await call('PUT', `/v1/shared/push/${sessionId}/chunks/0`, { token: bobToken, source: 'bob-raw', body: { rows } })).status, 200);
    const committed = await call<PushAnswer>('POST', `/v1/shared/push/${sessionId}/commit`, { token: bobToken, source: 'bob-raw' });
    assert.equal(committed.body.status, 'committed');
    const bobFolders = await serverRows(ctx.store, 'folders', bob, FOLDER_COLUMNS);
    assert.deepEqual(
      bobFolders.find((r) => r[0] === 'bob-chunked'),
      ['bob-chunked', 'from a session', null],
    );
    assert.deepEqual(
      (await serverRows(ctx.store, 'folders', alice, FOLDER_COLUMNS)).find((r) => r[0] === 'bob-chunked'),
      undefined,
    );
    // Leave Bob's folders as bobUnchanged expects.
    const removed = await call<PushAnswer>('POST', '/v1/shared/push', {
      token: bobToken,
      source: 'bob-raw',
      body: pushBody([{ table: 'folders', op: 'delete', key: ['bob-chunked'], hlc: hlc('bob-raw') }], { base_seq: '999' }),
    });
    assert.equal(removed.body.status, 'committed');
  });

  test('credentials: a source header other than the sid claim, expired or wrongly signed tokens are 401', async () => {
    const withSid = await userToken(alice, { sid: 'alice-watch' });
    assert.equal((await call('GET', '/v1/shared/config', { token: withSid, source: 'alice-watch' })).status, 200);
    assert.equal((await call('GET', '/v1/shared/config', { token: withSid, source: null })).status, 200);
    const mismatched = await call('GET', '/v1/shared/config', { token: withSid, source: 'bob-phone' });
    assert.equal(mismatched.status, 401);
    assert.equal(mismatched.body.error, 'unauthorized');
    assert.match(String(mismatched.body.message), /different source/);
    // The mismatch is refused on writes too, before anything is read.
    const before = await bundleCount(alice);
    const push = await call('POST', '/v1/shared/push', { token: withSid, source: 'alice-phone', body: pushBody([folderRow('alice-phone', 'sid-forged', 'x')]) });
    assert.equal(push.status, 401);
    assert.equal(await bundleCount(alice), before);

    const expired = await hs256Token(JWT_SECRET, { sub: alice }, { expiresInSec: -3600 });
    const wrongSecret = await hs256Token('another-secret-that-is-long-enough-0123456789', { sub: bob });
    const noSub = await hs256Token(JWT_SECRET, { user: bob });
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: bob, exp: 9_999_999_999 })).toString('base64url')}.`;
    const [header, payload] = aliceToken.split('.');
    const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), sub: bob })).toString('base64url');
    const tampered = `${header}.${forgedPayload}.${aliceToken.split('.')[2]}`;
    const refusals: [string, string | null, RegExp][] = [
      ['expired', expired, /expired/],
      ['wrong secret', wrongSecret, /signature/],
      ['no sub', noSub, /sub/],
      ['alg none', unsigned, /./],
      ['payload swapped to another user', tampered, /signature/],
      ['no token', null, /missing/],
      ['the admin token', ADMIN_TOKEN, /./],
    ];
    for (const [what, token, pattern] of refusals) {
      for (const [method, path, body] of [
        ['GET', '/v1/shared/config', undefined],
        ['GET', '/v1/shared/pull?after=0', undefined],
        ['POST', '/v1/shared/snapshots', undefined],
        ['POST', '/v1/shared/push', pushBody([folderRow('alice-raw', 'bad-token', 'x')])],
      ] as const) {
        const answer = await call(method, path, { token, ...(body === undefined ? {} : { body }) });
        assert.equal(answer.status, 401, `${what} on ${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
        assert.match(String(answer.body.message), pattern, what);
        if (token) assert.ok(!JSON.stringify(answer.body).includes(token.split('.')[2] || token), `${what}: the answer echoes the token`);
      }
    }
    assert.equal(await bundleCount(alice), before);
    await bobUnchanged();

    // A device token is no key to the admin write route.
    const admin = await call('POST', `/v1/admin/shared/scopes/${bob}/bundles`, { body: { source_bundle_id: randomUUID(), rows: [folderRow('x', 'admin-forged', 'x')] } });
    assert.equal(admin.status, 401, JSON.stringify(admin.body));
    await bobUnchanged();
  });

  test("a foreign key can never point at another scope's row: foreign_key conflict, nothing stored", async () => {
    const before = await bundleCount(alice);
    const note = {
      table: 'notes',
      op: 'upsert',
      key: ['0190a0a0-0000-7000-8000-0000000000a1'],
      row: ['0190a0a0-0000-7000-8000-0000000000a1', 'shared-id', 'alice points at bob', 1, 0.5, null],
      hlc: hlc('alice-raw'),
    };
    const child = { ...folderRow('alice-raw', 'child-of-bob', 'child'), row: ['child-of-bob', 'child', 'f1'] };
    const answer = await call<PushAnswer>('POST', '/v1/shared/push', { body: pushBody([note, child]) });
    assert.equal(answer.status, 409, JSON.stringify(answer.body));
    assert.equal(answer.body.status, 'conflict');
    const conflicts = (answer.body as { conflicts: { table: string; kind: string; key: unknown[] }[] }).conflicts;
    assert.deepEqual(
      conflicts.map((c) => [c.table, c.kind, c.key[0]]).sort(),
      [
        ['folders', 'foreign_key', 'child-of-bob'],
        ['notes', 'foreign_key', '0190a0a0-0000-7000-8000-0000000000a1'],
      ],
    );
    assert.equal(await bundleCount(alice), before);
    assert.deepEqual(await serverRows(ctx.store, 'notes', alice, NOTE_COLUMNS), []);
    await bobUnchanged();

    // Through the SDK the same push is rolled back locally and logged.
    const aliceLaptop = await device(alice, 'laptop');
    await aliceLaptop.sync();
    aliceLaptop.db.pragma('foreign_keys = OFF');
    aliceLaptop.db.prepare(`INSERT INTO notes (id, folder_id, title) VALUES ('0190a0a0-0000-7000-8000-0000000000a2', 'f1', 'dangling to bob')`).run();
    aliceLaptop.db.pragma('foreign_keys = ON');
    const report = await aliceLaptop.sync();
    assert.equal(report.push.conflicts, 1);
    const logged = (await aliceLaptop.conflicts()).at(-1)!;
    assert.equal(logged.kind, 'foreign_key');
    assert.equal(logged.table, 'notes');
    assert.deepEqual(aliceLaptop.db.prepare('SELECT id FROM notes').all(), []);
    assert.deepEqual(await serverRows(ctx.store, 'notes', alice, NOTE_COLUMNS), []);
    await bobUnchanged();
  });

  test('hostile table names in a push are refused with a clear 400 and nothing is stored', async () => {
    const bundlesBefore = await rowCountAll();
    const aliceBefore = await bundleCount(alice);
    const hostile = [
      '"; DROP TABLE syncline_shared.folders; --',
      "folders'; DROP TABLE sync_bundles; --",
      'fol\u0000ders',
      'unknown_table',
      'sync_bundles',
      '_syncline_dirty',
      'syncline_shared.folders',
      'FOLDERS',
      ' folders',
      '../folders',
    ];
    for (const table of hostile) {
      const answer = await call('POST', '/v1/shared/push', { body: pushBody([{ table, op: 'upsert', key: ['x'], row: ['x', 'y', null], hlc: hlc('alice-raw') }]) });
      assert.equal(answer.status, 400, `${JSON.stringify(table)}: ${answer.status} ${JSON.stringify(answer.body)}`);
      // A name with a control character is refused for what it is before any lookup.
      const expected = /[\u0000-\u001f]/.test(table) ? 'hostile_identifier' : 'unknown_table';
      assert.equal(answer.body.error, expected, JSON.stringify(table));
      if (expected === 'unknown_table') assert.match(String(answer.body.message), /is not a shared table/);
    }
    // A hostile name after a good row refuses the whole bundle.
    const mixed = await call('POST', '/v1/shared/push', {
      body: pushBody([folderRow('alice-raw', 'good', 'good'), { table: '"; DROP TABLE x; --', op: 'delete', key: ['x'], hlc: hlc('alice-raw') }]),
    });
    assert.equal(mixed.status, 400);
    // Names too long for the schema are refused before any lookup.
    const long = await call('POST', '/v1/shared/push', { body: pushBody([{ table: 'x'.repeat(500), op: 'delete', key: ['x'], hlc: hlc('alice-raw') }]) });
    assert.equal(long.status, 400);
    assert.equal(long.body.error, 'invalid_batch');
    // So are hostile names that arrive in chunks: the commit is refused, not the server.
    const rows = [{ table: '"; DROP TABLE syncline_shared.folders; --', op: 'delete', key: ['x'], hlc: hlc('alice-raw') }];
    const begun = await call<PushAnswer>('POST', '/v1/shared/push', { body: { ...pushBody(rows), rows: undefined } });
    const sessionId = (begun.body as { session_id: string }).session_id;
    assert.equal((await call('PUT', `/v1/shared/push/${sessionId}/chunks/0`, { body: { rows } })).status, 200);
    const commit = await call('POST', `/v1/shared/push/${sessionId}/commit`);
    assert.equal(commit.status, 400);
    assert.equal(commit.body.error, 'unknown_table');

    assert.equal(await rowCountAll(), bundlesBefore);
    assert.equal(await bundleCount(alice), aliceBefore);
    const { rows: tables } = await ctx.store.query<{ n: string }>(`SELECT count(*)::text AS n FROM information_schema.tables WHERE table_schema = 'syncline_shared' AND table_name = 'folders'`);
    assert.equal(tables[0]!.n, '1');
    await bobUnchanged();
  });

  test('malformed pushes get a clear 400 naming what is wrong, and nothing is stored', async () => {
    const bundlesBefore = await rowCountAll();
    const aliceBefore = await bundleCount(alice);
    const good = folderRow('alice-raw', 'ok', 'fine');
    const cases: { label: string; raw?: string; rows?: unknown[]; error: string; message?: RegExp }[] = [
      { label: 'not JSON', raw: '{"format_version": 1, "rows": [', error: 'malformed_payload' },
      { label: 'a bad value tag', rows: [good, { ...good, key: ['v'], row: ['v', { $evil: 'x' }, null] }], error: 'invalid_value_encoding', message: /unknown value tag/ },
      { label: 'NaN as a REAL', rows: [{ table: 'notes', op: 'upsert', key: ['0190a0a0-0000-7000-8000-00000000aaaa'], row: ['0190a0a0-0000-7000-8000-00000000aaaa', null, 't', 1, { $real: 'NaN' }, null], hlc: hlc('alice-raw') }], error: 'invalid_number_encoding' },
      { label: 'a row of the wrong width', rows: [{ ...good, row: ['ok', 'fine'] }], error: 'row_shape_mismatch', message: /3 columns/ },
      { label: 'a key of the wrong width', rows: [{ ...good, key: ['ok', 'extra'] }], error: 'row_shape_mismatch', message: /1 key columns/ },
      { label: 'a row whose key differs from its key', rows: [{ ...good, key: ['other'] }], error: 'invalid_batch', message: /differs from its key/ },
      { label: 'a delete carrying a row', rows: [{ ...good, op: 'delete' }], error: 'invalid_batch', message: /delete carries no row/ },
      { label: 'an upsert without its row', rows: [{ table: 'folders', op: 'upsert', key: ['ok'], hlc: hlc('alice-raw') }], error: 'invalid_batch', message: /carries its row/ },
      { label: 'an unreadable HLC stamp', rows: [{ ...good, hlc: '999999999999999999-x' }], error: 'invalid_batch', message: /HLC/ },
      { label: 'a push to a table that only syncs down', rows: [{ table: 'catalog', op: 'upsert', key: ['sku'], row: ['sku', 1.5], hlc: hlc('alice-raw') }], error: 'forbidden', message: /syncs down/ },
    ];
    for (const c of cases) {
      const answer = c.raw !== undefined ? await call('POST', '/v1/shared/push', { raw: c.raw }) : await call('POST', '/v1/shared/push', { body: pushBody(c.rows!) });
      assert.equal(answer.body.error, c.error, `${c.label}: ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.ok(answer.status === 400 || answer.status === 403, `${c.label}: ${answer.status}`);
      if (c.message) assert.match(String(answer.body.message), c.message, c.label);
    }
    assert.equal(await rowCountAll(), bundlesBefore);
    assert.equal(await bundleCount(alice), aliceBefore);
    assert.ok(!(await serverRows(ctx.store, 'folders', alice, FOLDER_COLUMNS)).some((r) => r[0] === 'ok'), 'the good row of a refused bundle is not stored either');
    await bobUnchanged();
  });

  test('bad pull and snapshot parameters are refused with the field named', async () => {
    for (const [path, field] of [
      ['/v1/shared/pull?after=abc', 'after'],
      ['/v1/shared/pull?after=-1', 'after'],
      ['/v1/shared/pull?after=0&limit=0', 'limit'],
      ['/v1/shared/pull?after=0&limit=99999999', 'limit'],
      ['/v1/shared/pull?after=0&after_ordinal=x', 'after_ordinal'],
      ['/v1/shared/pull?after=0&target=1e3', 'target'],
    ] as const) {
      const answer = await call('GET', path);
      assert.equal(answer.status, 400, `${path}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error, 'invalid_request', path);
      assert.equal((answer.body.context as { field?: string }).field, field, path);
    }
    const chunk = await call('GET', `/v1/shared/snapshots/${randomUUID()}/chunks/abc`);
    assert.equal(chunk.status, 400);
    assert.equal((chunk.body.context as { field?: string }).field, 'index');
  });

  test('an oversized body is 413 and stores nothing', async () => {
    const before = await bundleCount(alice);
    const big = 'x'.repeat(9 * 1024 * 1024);
    const body = JSON.stringify(pushBody([folderRow('alice-raw', 'huge', big)]));
    let status: number | undefined;
    try {
      status = (await call('POST', '/v1/shared/push', { raw: body })).status;
    } catch (error) {
      // The server may close the connection while the client still sends; that is a refusal too, but say so.
      assert.fail(`the oversized push was not answered: ${(error as Error).message}`);
    }
    assert.equal(status, 413);
    assert.equal(await bundleCount(alice), before);
    // The server still serves afterwards.
    assert.equal((await call('GET', '/v1/shared/config')).status, 200);
  });

  test('a replayed push (same source_bundle_id) is answered as a duplicate and makes no second bundle', async () => {
    const before = await bundleCount(alice);
    const body = pushBody([folderRow('alice-raw', 'replayed', 'once')]);
    const first = await call<PushAnswer>('POST', '/v1/shared/push', { body });
    assert.equal(first.status, 200);
    assert.deepEqual({ ...first.body, bundle_seq: undefined }, { status: 'committed', duplicate: false, bundle_seq: undefined });
    const seq = (first.body as { bundle_seq: string }).bundle_seq;
    const again = await call<PushAnswer>('POST', '/v1/shared/push', { body });
    assert.deepEqual(again.body, { status: 'committed', bundle_seq: seq, duplicate: true });
    // Same id with other rows: still the first bundle, the new rows are not applied.
    const altered = await call<PushAnswer>('POST', '/v1/shared/push', { body: { ...body, rows: [folderRow('alice-raw', 'replayed', 'twice')] } });
    assert.deepEqual(altered.body, { status: 'committed', bundle_seq: seq, duplicate: true });
    // Same id chunked: the begin already answers with the committed bundle.
    const chunked = await call<PushAnswer>('POST', '/v1/shared/push', { body: { ...body, rows: undefined } });
    assert.deepEqual(chunked.body, { status: 'committed', bundle_seq: seq, duplicate: true });
    assert.equal(await bundleCount(alice), before + 1);
    assert.deepEqual(
      (await serverRows(ctx.store, 'folders', alice, FOLDER_COLUMNS)).find((r) => r[0] === 'replayed'),
      ['replayed', 'once', null],
    );
    // Bob replaying Alice's bundle id commits in his own scope; Alice's is untouched.
    const bobBefore = await bundleCount(bob);
    const bobs = await call<PushAnswer>('POST', '/v1/shared/push', { token: bobToken, source: 'alice-raw', body: { ...body, rows: [folderRow('alice-raw', 'bob-replayed', 'bob')] } });
    assert.equal(bobs.body.status, 'committed');
    assert.equal((bobs.body as { duplicate: boolean }).duplicate, false);
    assert.equal(await bundleCount(bob), bobBefore + 1);
    assert.equal(await bundleCount(alice), before + 1);
    assert.deepEqual(
      (await serverRows(ctx.store, 'folders', alice, FOLDER_COLUMNS)).find((r) => r[0] === 'bob-replayed'),
      undefined,
    );
    const removed = await call<PushAnswer>('POST', '/v1/shared/push', {
      token: bobToken,
      source: 'bob-raw',
      body: pushBody([{ table: 'folders', op: 'delete', key: ['bob-replayed'], hlc: hlc('bob-raw') }], { base_seq: '999' }),
    });
    assert.equal(removed.body.status, 'committed');
    await bobUnchanged();
  });

  test("the event stream announces only the user's own commits", async () => {
    const aliceHead = async () => {
      const { rows } = await ctx.store.query<{ h: string }>('SELECT head_seq::text AS h FROM sync_scopes WHERE scope = $1', [alice]);
      return rows[0]?.h ?? '0';
    };
    const abort = new AbortController();
    const response = await fetch(`${server.url}/v1/shared/events`, { headers: { authorization: `Bearer ${aliceToken}`, [SOURCE_HEADER]: 'alice-raw' }, signal: abort.signal });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const heads = (): string[] => [...text.matchAll(/data: (\{.*\})/g)].map((m) => (JSON.parse(m[1]!) as { head_seq: string }).head_seq);
    // One read in flight at a time: a read left pending by a timeout still gets the next chunk.
    let pending: ReturnType<typeof reader.read> | undefined;
    const readUntil = async (count: number, ms: number) => {
      const deadline = Date.now() + ms;
      while (heads().length < count && Date.now() < deadline) {
        pending ??= reader.read();
        const chunk = await Promise.race([pending, new Promise<null>((resolve) => setTimeout(() => resolve(null), Math.max(1, deadline - Date.now())))]);
        if (chunk === null) break;
        pending = undefined;
        if (chunk.done) break;
        text += decoder.decode(chunk.value, { stream: true });
      }
    };
    try {
      await readUntil(1, 5_000);
      assert.deepEqual(heads(), [await aliceHead()]);
      const bobPush = await call<PushAnswer>('POST', '/v1/shared/push', {
        token: bobToken,
        source: 'bob-raw',
        body: pushBody([{ table: 'profiles', op: 'upsert', key: [1], row: [1, 'Bob', 'dark', 'en'], hlc: hlc('bob-raw') }], { base_seq: '999' }),
      });
      assert.equal(bobPush.body.status, 'committed');
      await readUntil(2, 300);
      assert.equal(heads().length, 1, `alice heard of bob's commit: ${text}`);
      const alicePush = await call<PushAnswer>('POST', '/v1/shared/push', { body: pushBody([folderRow('alice-raw', 'evented', 'x')], { base_seq: '999' }) });
      assert.equal(alicePush.body.status, 'committed');
      await readUntil(2, 5_000);
      assert.deepEqual(heads().slice(1), [(alicePush.body as { bundle_seq: string }).bundle_seq]);
    } finally {
      abort.abort();
      await reader.cancel().catch(() => undefined);
    }
  });
});
