import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { uuidv7 } from 'uuidv7';
import { Routes } from '../../src/protocol/constants.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { createDeviceToken, runSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { realPostgresReachable } from '../support/postgres.js';
import { eventually } from '../support/replication-check.js';
import { tempDir } from '../support/temp.js';
import { freePort } from '../support/mqtt-fixtures.js';

/** The first hour of a new user, through the real CLI against one real server process: errors, help, --json, tables, reviews. */

const READINGS: TableSpec = {
  table: 'readings',
  columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'at', type: 'INTEGER' }, { name: 'price', type: 'REAL' }, { name: 'note', type: 'TEXT' }],
};

/** One line on stderr in the documented shape, and no stack. */
function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected:\n${stderr}`);
  assert.match(lines[0]!, /^syncline: [^:]+: .+\.$/);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

const PG_REACHABLE = await realPostgresReachable();

describe('the CLI as a new user meets it (real server process, PGlite)', () => {
  const dir = tempDir('syncline-cli-output-');
  let server: ServerProcess;
  const admin = (args: string[], env: NodeJS.ProcessEnv = {}) => runSyncline(['admin', ...args, '--server', server.url], { SYNCLINE_ADMIN_TOKEN: server.adminToken, ...env });
  const json = async <T>(args: string[]): Promise<T> => {
    const result = await admin([...args, '--json']);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  };
  const send = async (deviceToken: string) => {
    const rows = [1, 2].map((i) => ({ seq: i, op: 'insert' as const, pk: [BigInt(i)], row: [BigInt(i), 1_700_000_000n + BigInt(i), i === 2 ? 3 : 9.5, `n${i}`] }));
    const sent = await fetch(`${server.url}${Routes.rowBatch}`, { method: 'POST', headers: { authorization: `Bearer ${deviceToken}`, 'content-type': 'application/json' }, body: JSON.stringify(wireBatch(READINGS, rows, { epoch: uuidv7() })) });
    return (await sent.json()) as { lineage_id: string };
  };
  // Setup and checks that are not about the CLI's output go straight to the API: each CLI run costs a process start.
  const api = async <T>(path: string): Promise<T> => (await (await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.adminToken}` } })).json()) as T;
  const reviewOf = async (lineageId: string, status = 'queued,in_review') =>
    (await api<{ reviews: { id: string; summary: string; origin: string; status: string }[] }>(`${Routes.schemaReviews}?lineage_id=${lineageId}&status=${status}`)).reviews;

  before(async () => {
    server = await startServer({ dataDir: dir.path });
  });
  after(async () => {
    await server?.stop();
    dir.remove();
  });

  test('--version, per-subcommand help, and a missing flag named in one line', async () => {
    const version = await runSyncline(['--version']);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim().split(' ')[1], (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);

    const device = await runSyncline(['admin', 'device', '--help']);
    assert.equal(device.code, 0);
    assert.match(device.stdout, /^usage: syncline admin device create --name NAME/);
    assert.doesNotMatch(device.stdout, /mirror-rows/, 'only the device subcommands');
    const lineages = await runSyncline(['admin', 'lineages', '--help']);
    assert.equal(lineages.code, 0);
    assert.match(lineages.stdout, /^usage: syncline admin lineages/);

    const noDb = await runSyncline(['agent', '--server', server.url, '--token', 'x']);
    assert.equal(noDb.code, 2);
    assertOneLineError(noDb.stderr, /--db \(or SYNCLINE_DB\) is required/);
    const busyLoop = await runSyncline(['agent', '--db', join(dir.path, 'x.db'), '--server', server.url, '--token', 'x', '--retry-max-ms', '10']);
    assert.equal(busyLoop.code, 2);
    assertOneLineError(busyLoop.stderr, /--retry-max-ms must be at least 250/);
    const noId = await admin(['reviews', 'approve']);
    assert.equal(noId.code, 2);
    assertOneLineError(noId.stderr, /REVIEW_ID is required/);
    const noName = await admin(['device', 'create']);
    assertOneLineError(noName.stderr, /--name is required/);
  });

  test('errors are one line with what to do; --verbose adds the stack', async () => {
    const closed = await freePort();
    const down = await runSyncline(['admin', 'lineages', '--server', `http://127.0.0.1:${closed}`], { SYNCLINE_ADMIN_TOKEN: 'x' });
    assert.equal(down.code, 1);
    assertOneLineError(down.stderr, /^syncline: admin lineages: cannot reach the server at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED \[transport_failed\]\. Check that the server is running/);
    const verbose = await runSyncline(['admin', 'lineages', '--server', `http://127.0.0.1:${closed}`, '--verbose'], { SYNCLINE_ADMIN_TOKEN: 'x' });
    assert.match(verbose.stderr, /\n\s+at /, 'the stack under --verbose');

    const badToken = await admin(['lineages'], { SYNCLINE_ADMIN_TOKEN: 'sla_wrong' });
    assertOneLineError(badToken.stderr, /\[unauthorized\]\. Check the token/);
  });

  test('server: the banner names the web console and how to sign in, and the page is there', async () => {
    await eventually('the console line', () => /web console: /.test(server.stdout()), 10_000);
    const line = /^web console: (\S+) \((.*)\)$/m.exec(server.stdout());
    assert.ok(line, server.stdout());
    assert.equal(line[1], `${server.url}${Routes.console}`);
    assert.match(line[2]!, /SYNCLINE_ADMIN_TOKEN/, 'the token came from the environment: the hint says so rather than printing it');
    assert.doesNotMatch(server.stdout(), new RegExp(server.adminToken), 'a token the operator set is never echoed');
    const page = await fetch(line[1]!);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  });

  test('server: a database that cannot be opened is one line, and no admin token is handed out', { skip: !PG_REACHABLE && 'PostgreSQL not reachable' }, async () => {
    const base = new URL(process.env.SYNCLINE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
    base.pathname = `/syncline_no_such_db_${process.pid}`;
    const run = await runSyncline(['server', '--http-port', '0', '--mqtt-port', '0', '--database-url', base.toString()], { SYNCLINE_ADMIN_TOKEN: '', DATABASE_URL: '' });
    assert.equal(run.code, 2, run.stderr);
    assert.doesNotMatch(run.stdout, /admin token/);
    assertOneLineError(run.stderr, /cannot open the store \(PostgreSQL at .*syncline_no_such_db_.*\): .*does not exist; check DATABASE_URL/);
  });

  test('--json: one object for one thing, {items, next} for lists', async () => {
    const created = await json<{ device_id: string; token: string }>(['device', 'create', '--name', 'json-shape']);
    assert.ok(created.device_id && created.token);
    const list = await json<{ items: { device_id: string }[]; next: null }>(['device', 'list']);
    assert.ok(list.items.some((d) => d.device_id === created.device_id));
    assert.equal(list.next, null);
    const lineages = await json<{ items: unknown[]; next: null }>(['lineages']);
    assert.ok(Array.isArray(lineages.items));
    const { lineage_id } = await send(created.token);
    const [review] = await reviewOf(lineage_id);
    const claimed = await json<{ review: { id: string; action_version: number } }>(['reviews', 'claim', review!.id]);
    assert.equal(claimed.review.id, review!.id);
    const approved = await json<{ review: { id: string; status: string }; mirror_table: string }>(['reviews', 'approve', review!.id, '--all-mirror']);
    assert.equal(approved.review.status, 'approved');
    const audit = await json<{ items: unknown[]; next: string | null }>(['audit', '--limit', '2']);
    assert.equal(audit.items.length, 2);
    assert.equal(typeof audit.next, 'string');

    await eventually('the replay', async () => (await api<{ replay: { state: string } | null }>(Routes.lineageReplay.replace(':id', lineage_id))).replay?.state === 'done');
    const rows = await json<{ items: { price: unknown }[] }>(['mirror-rows', lineage_id]);
    assert.deepEqual(rows.items.map((r) => r.price), [9.5, { $real: '3' }], '--json keeps the wire form');
    const table = await admin(['mirror-rows', lineage_id]);
    assert.match(table.stdout, /^2\s+1700000002\s+3\.0\s+n2\s/m, 'a table shows an integral REAL as 3.0, not its wire form');
  });

  test('wide tables fit the terminal with …; control characters are shown escaped; --json keeps everything', async () => {
    const name = `\u001b[31mred${'x'.repeat(150)}\u202eevil`;
    await json(['device', 'create', '--name', name]);
    const table = await admin(['device', 'list'], { COLUMNS: '80' });
    assert.equal(table.code, 0, table.stderr);
    for (const line of table.stdout.trimEnd().split('\n')) assert.ok([...line].length <= 80, `fits 80 columns: ${line}`);
    assert.match(table.stdout, /\\x1b\[31mredx*…/);
    assert.match(table.stdout, /^[0-9a-f-]{36}  /m, 'ids are never cut');
    assert.doesNotMatch(table.stdout, /\u001b|\u202e/);
    const full = await json<{ items: { name: string }[] }>(['device', 'list']);
    assert.ok(full.items.some((d) => d.name === name));
  });

  test('--mirror-as is parsed strictly: unknown types and unsafe casts are refused before anything changes', async () => {
    const device = await createDeviceToken(server, 'mirror-as');
    const { lineage_id } = await send(device.token);
    const [review] = await reviewOf(lineage_id);
    const unknownType = await admin(['reviews', 'approve', review!.id, '--all-mirror', '--mirror-as', 'at=at:integer']);
    assert.equal(unknownType.code, 2);
    assertOneLineError(unknownType.stderr, /"integer" is not a mirror type; use one of bigint, double precision, text, numeric, bytea, jsonb/);
    const unsafe = await admin(['reviews', 'approve', review!.id, '--all-mirror', '--mirror-as', 'price=price_eur:numeric']);
    assertOneLineError(unsafe.stderr, /numeric is not a safe cast for "price"; use double precision or jsonb/);
    const colon = await admin(['reviews', 'approve', review!.id, '--all-mirror', '--mirror-as', 'at=a:b:bigint']);
    assertOneLineError(colon.stderr, /cannot contain ":"/);
    assert.equal((await reviewOf(lineage_id, 'queued'))[0]?.id, review!.id, 'nothing was claimed or changed');

    const ok = await admin(['reviews', 'approve', review!.id, '--all-mirror', '--mirror-as', 'at=at_s:numeric,price=price_eur']);
    assert.equal(ok.code, 0, ok.stderr);
    const bound = await api<{ schema: { columns: { name: string; binding: { target_column: string; pg_type: string } }[] } }>(`${Routes.schemaReviews}/${review!.id}`);
    assert.deepEqual(bound.schema.columns.map((c) => [c.name, c.binding.target_column, c.binding.pg_type]), [['id', 'id', 'bigint'], ['at', 'at_s', 'numeric'], ['price', 'price_eur', 'double precision'], ['note', 'note', 'text']]);
  });

  test('--defer: the follow-up review asks only for the deferred columns; a decided review says so plainly', async () => {
    const device = await createDeviceToken(server, 'defer');
    const { lineage_id } = await send(device.token);
    const [first] = await reviewOf(lineage_id);
    assert.equal(first!.summary, 'first schema of this table');
    const deferred = await admin(['reviews', 'approve', first!.id, '--mirror', 'id,at,price', '--defer', 'note']);
    assert.equal(deferred.code, 0, deferred.stderr);
    assert.match(deferred.stdout, /deferred note: the lineage stays paused \(new rows are staged, none is lost\) until review \S+ decides only these columns/);

    const [followUp] = await reviewOf(lineage_id);
    assert.equal(followUp!.origin, 'defer');
    const shown = await admin(['reviews', 'show', followUp!.id]);
    assert.equal(shown.code, 0, shown.stderr);
    const columnRows = shown.stdout.split('\n').filter((line) => /^(id|at|price|note)\s+(INTEGER|REAL|TEXT)/.test(line));
    assert.deepEqual(columnRows.map((line) => line.split(/\s+/)[0]), ['note'], shown.stdout);
    assert.match(shown.stdout, /decided before \(kept unless named again\): id, at, price/);

    const done = await admin(['reviews', 'approve', followUp!.id, '--mirror', 'note']);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /replaying 2 staged rows|nothing staged/);
    const again = await admin(['reviews', 'approve', followUp!.id, '--mirror', 'note']);
    assert.equal(again.code, 1);
    assertOneLineError(again.stderr, /review \S+ is already approved \(by .*\); there is nothing to approve: run `syncline admin reviews show \S+` for its decision \[conflict\]\.$/);
    for (const r of await reviewOf(lineage_id, 'approved')) assert.doesNotMatch(r.summary, /waiting/);
  });
});
