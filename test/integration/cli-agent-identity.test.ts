import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { createDeviceToken, runSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { lineages, mirrorRows } from '../support/replication-check.js';
import { JWT_SECRET, userToken } from '../support/shared-fixtures.js';
import { tempDir } from '../support/temp.js';
import { freePort } from '../support/mqtt-fixtures.js';

/**
 * Which device a file ships for, and giving up plainly: `syncline agent` (edge and
 * --shared) as real processes against one real server process.
 */

const SHARED = {
  auth: { hs256_secret: JWT_SECRET },
  tables: [{ name: 'todos', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'TEXT' }, { name: 'title', type: 'TEXT' }] }],
};

function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n').filter((line) => !line.startsWith('{'));
  assert.equal(lines.length, 1, stderr);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack');
  return lines[0]!;
}

describe('syncline agent: the device of a file, and --once giving up', () => {
  const dir = tempDir('syncline-agent-identity-');
  let server: ServerProcess;
  before(async () => {
    writeFileSync(join(dir.path, 'shared.json'), JSON.stringify(SHARED));
    server = await startServer({ dataDir: join(dir.path, 'server'), extraArgs: ['--schema-policy', 'auto', '--shared-config', join(dir.path, 'shared.json')] });
  });
  after(async () => {
    await server?.stop();
    dir.remove();
  });

  test('a file refuses a second device; --rebind-device re-snapshots it so the new mirror is complete', async () => {
    const path = join(dir.path, 'edge.db');
    const app = new Database(path);
    app.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)');
    const insert = app.prepare('INSERT INTO items (name) VALUES (?)');
    for (let i = 0; i < 25; i++) insert.run(`n${i}`);
    const first = await createDeviceToken(server, 'first');
    const second = await createDeviceToken(server, 'second');
    const ship = (token: string, extra: string[] = []) => runSyncline(['agent', '--db', path, '--server', server.url, '--token', token, '--once', ...extra]);

    assert.equal((await ship(first.token)).code, 0);
    insert.run('late');
    const refused = await ship(second.token);
    assert.equal(refused.code, 2);
    assert.match(oneLine(refused.stderr), /edge\.db ships for another device token \(since .*\), not for this token: .*pass --rebind-device to re-snapshot the file for this device/);
    assert.equal((await lineages(server, second.device_id)).length, 0, 'nothing was shipped for the second device');

    const rebound = await ship(second.token, ['--rebind-device']);
    assert.equal(rebound.code, 0, rebound.stderr);
    const [lineage] = await lineages(server, second.device_id);
    assert.equal((await mirrorRows(server, lineage!.id)).length, 26, "the second device's mirror has every row");
    assert.equal((await ship(first.token)).code, 2, 'and now the first device is the other one');
    app.close();
  });

  test('edge and two-way --once give up after --once-timeout-ms with one plain line naming where they tried', async () => {
    const port = await freePort();
    const path = join(dir.path, 'offline.db');
    const app = new Database(path);
    app.exec('CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);');
    app.close();
    const started = Date.now();
    const edge = await runSyncline(['agent', '--db', path, '--server', `http://127.0.0.1:${port}`, '--token', 'sld_x', '--once', '--once-timeout-ms', '1500']);
    assert.equal(edge.code, 1);
    assert.match(oneLine(edge.stderr), new RegExp(`^syncline: agent: the server could not be reached within 2 s \\(\\d+ retries, 0 rows shipped; last error: .*\\) \\(tried http://127\\.0\\.0\\.1:${port}\\) \\[transport_failed\\]\\. Check that the server is running`));
    const shared = await runSyncline(['agent', '--shared', '--db', join(dir.path, 'offline-shared.db'), '--server', `http://127.0.0.1:${port}`, '--jwt', await userToken('dora'), '--once', '--once-timeout-ms', '1500']);
    assert.equal(shared.code, 1);
    assert.match(oneLine(shared.stderr), new RegExp(`^syncline: agent: the server could not be reached within 2 s \\(tried http://127\\.0\\.0\\.1:${port} \\d+ times; last error: .*\\) \\[transport_failed\\]`));
    assert.ok(Date.now() - started < 20_000);
  });

  test("agent --shared takes the device from the token's sid; a stored id that disagrees is replaced and said so", async () => {
    const path = join(dir.path, 'tablet.db');
    const app = new Database(path);
    app.pragma('journal_mode = WAL');
    app.exec('CREATE TABLE todos (id TEXT PRIMARY KEY, title TEXT)');
    app.prepare("INSERT INTO todos VALUES ('a', 'from the tablet')").run();
    app.close();
    // An earlier run without a sid claim generated and kept a source id in the file.
    const plain = await runSyncline(['agent', '--shared', '--db', path, '--server', server.url, '--jwt', await userToken('erin'), '--once']);
    assert.equal(plain.code, 0, plain.stderr);
    const generated = (JSON.parse(plain.stdout.trim().split('\n').at(-1)!) as { source: string }).source;

    const jwt = await userToken('erin', { sid: 'tablet' });
    const run = await runSyncline(['agent', '--shared', '--db', path, '--server', server.url, '--jwt', jwt, '--once']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { source: string }).source, 'tablet');
    assert.match(run.stderr, new RegExp(`tablet\\.db kept the source id ${generated}; this device is tablet \\(the token's sid claim\\), which it uses from now on`));
    const again = await runSyncline(['agent', '--shared', '--db', path, '--server', server.url, '--jwt', jwt, '--once']);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /kept the source id/, 'said once');
  });

  test('the SDK pushes writes made through its own connection at once, not at the next poll', async () => {
    const jwt = await userToken('fred');
    const a = await SharedSync.open({ path: join(dir.path, 'a.db'), serverUrl: server.url, token: jwt, source: 'a' });
    const b = await SharedSync.open({ path: join(dir.path, 'b.db'), serverUrl: server.url, token: jwt, source: 'b' });
    try {
      a.start({ pollMs: 60_000, watchMs: 50 });
      b.start({ pollMs: 60_000, watchMs: 50 });
      await a.sync();
      await b.sync();
      const wrote = Date.now();
      a.db.prepare("INSERT INTO todos (id, title) VALUES ('x', 'written through the SDK connection')").run();
      while (b.db.prepare("SELECT 1 FROM todos WHERE id = 'x'").get() === undefined) {
        assert.ok(Date.now() - wrote < 5000, 'b did not see the write within 5 s');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(Date.now() - wrote < 2000, `converged in ${Date.now() - wrote} ms`);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
