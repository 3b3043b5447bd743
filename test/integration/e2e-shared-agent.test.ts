import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { freePort } from '../support/mqtt-fixtures.js';
import { finished, runSyncline, spawnSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { eventually } from '../support/replication-check.js';
import { JWT_SECRET, userToken } from '../support/shared-fixtures.js';
import { tempDir } from '../support/temp.js';

/**
 * The two-way sync loop as an operator runs it: `syncline server --shared-config`
 * and `syncline agent --shared` as real processes, on SQLite files an app writes
 * with no idea Syncline exists.
 */

const CONFIG = {
  auth: { hs256_secret: JWT_SECRET },
  tables: [
    {
      name: 'todos',
      direction: 'both',
      key: ['id'],
      conflict: 'last_writer_wins',
      columns: [
        { name: 'id', type: 'TEXT' },
        { name: 'title', type: 'TEXT' },
        { name: 'done', type: 'INTEGER' },
      ],
    },
  ],
};

function appFile(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS todos (id TEXT PRIMARY KEY, title TEXT, done INTEGER)');
  return db;
}

const rows = (db: Database.Database) => db.prepare('SELECT id, title, done FROM todos ORDER BY id').raw().all();

describe('syncline agent --shared', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: ServerProcess;
  before(async () => {
    dir = tempDir('syncline-shared-agent-');
    writeFileSync(join(dir.path, 'shared.json'), JSON.stringify(CONFIG));
    server = await startServer({ dataDir: join(dir.path, 'server'), extraArgs: ['--shared-config', join(dir.path, 'shared.json')] });
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  test("two unmodified apps' files converge through agents run with --once", async () => {
    const jwt = await userToken('carol');
    const phonePath = join(dir.path, 'phone.db');
    const laptopPath = join(dir.path, 'laptop.db');
    const phone = appFile(phonePath);
    phone.prepare("INSERT INTO todos VALUES ('t1', 'buy milk', 0), ('t2', 'call mum', 0)").run();
    const agent = (path: string, source: string) => runSyncline(['agent', '--db', path, '--server', server.url, '--shared', '--jwt', jwt, '--source', source, '--once']);
    const first = await agent(phonePath, 'phone');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout.trim().split('\n').at(-1)!).push.rows, 2, 'rows the app wrote before the agent ever ran are pushed');
    const laptop = appFile(laptopPath);
    const second = await agent(laptopPath, 'laptop');
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(rows(laptop), [
      ['t1', 'buy milk', 0],
      ['t2', 'call mum', 0],
    ]);
    laptop.prepare("UPDATE todos SET done = 1 WHERE id = 't1'").run();
    phone.prepare("DELETE FROM todos WHERE id = 't2'").run();
    for (const [path, source] of [[laptopPath, 'laptop'], [phonePath, 'phone'], [laptopPath, 'laptop']] as const) {
      const run = await agent(path, source);
      assert.equal(run.code, 0, run.stderr);
    }
    assert.deepEqual(rows(phone), [['t1', 'buy milk', 1]]);
    assert.deepEqual(rows(laptop), rows(phone));
    phone.close();
    laptop.close();
  });

  test('--retry-max-ms caps the wait between attempts while the server cannot be reached, running and with --once', async () => {
    const jwt = await userToken('dave');
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const args = (name: string) => ['agent', '--db', join(dir.path, `${name}.db`), '--server', nowhere, '--shared', '--jwt', jwt, '--retry-max-ms', '300'];
    // --once: retried every 0.1-0.4 s for 4 s (without the cap the waits double towards 5 s: about 5 attempts).
    const once = runSyncline([...args('offline-once'), '--once', '--once-timeout-ms', '4000']);
    const running = spawnSyncline(args('offline-running'));
    const exited = finished(running);
    let stderr = '';
    running.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const retries = () => stderr.split('\n').filter((line) => line.includes('background sync failed')).map((line) => JSON.parse(line) as { retry_in_ms: number });
    // Six failures: uncapped, the fifth wait alone could be up to 4 s.
    await eventually('six failed attempts of the running agent', () => retries().length >= 6, 60_000).finally(() => running.kill('SIGTERM'));
    assert.equal((await exited).code, 0);
    assert.deepEqual(retries().filter((r) => !(r.retry_in_ms <= 350)), [], 'every wait within --retry-max-ms (plus its 50 ms floor)');
    const gaveUp = await once;
    assert.equal(gaveUp.code, 1, gaveUp.stderr);
    const attempts = Number(/tried \S+ (\d+) times/.exec(gaveUp.stderr)?.[1]);
    assert.ok(attempts >= 8, `--once retried ${attempts} times in 4 s: ${gaveUp.stderr}`);
  });

  test('the server refuses to start on declarations it cannot honour, naming every problem at once before touching the database', async () => {
    const bad = {
      auth: { hs256_secret: 'too-short' },
      tables: [
        { name: 'v', direction: 'both', key: ['nope'], columns: [{ name: 'id', type: 'VARCHAR' }] },
        { name: 'a', direction: 'both', key: ['missing'], columns: [{ name: 'id', type: 'TEXT' }] },
        { name: 'b', direction: 'down', key: ['id'], columns: [{ name: 'id', type: 'REAL' }] },
        {
          name: 'c',
          direction: 'both',
          key: ['id'],
          columns: [
            { name: 'id', type: 'TEXT' },
            { name: 'a_id', type: 'TEXT' },
          ],
          references: [{ columns: ['a_id'], table: 'nowhere' }],
        },
      ],
    };
    writeFileSync(join(dir.path, 'bad.json'), JSON.stringify(bad));
    const run = await runSyncline(['server', '--data', join(dir.path, 'bad-server'), '--http-port', '0', '--mqtt-port', '0', '--shared-config', join(dir.path, 'bad.json')]);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /table "a": key column "missing" is not a declared column/);
    assert.match(run.stderr, /table "b": key column "id" has type REAL/);
    assert.match(run.stderr, /table "c": reference .* names a table that is not declared/);
    assert.match(run.stderr, /auth: the HS256 secret has 9 bytes; it needs at least 32/);
    assert.match(run.stderr, /table "v" \(tables\[0\]\): columns\.0\.type: Invalid option: expected one of/, 'each problem at its path');
    assert.doesNotMatch(run.stderr, /[✖→]/, "no marks of zod's multi-line layout");
    assert.match(run.stderr, /table "v" \(tables\[0\]\): key column "nope" is not a declared column/, 'a key problem is not hidden behind a value problem');
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, 'one line');
    assert.equal(existsSync(join(dir.path, 'bad-server')), false, 'the database was not touched');
  });
});
