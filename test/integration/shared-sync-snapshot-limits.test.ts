import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { SharedRoutes, SOURCE_HEADER } from '../../src/protocol/shared-sync.js';
import { createScratchDatabase, realPostgresReachable } from '../support/postgres.js';
import { runSyncline, startServer } from '../support/processes.js';
import { JWT_SECRET, SHARED_TEST_TABLES, userToken } from '../support/shared-fixtures.js';
import { tempDir } from '../support/temp.js';

/**
 * The snapshot caps are server options: `syncline server --snapshot-max-per-scope
 * --snapshot-max-scope-mib --snapshot-max-total-mib --snapshot-idle-seconds`
 * (and their SYNCLINE_SNAPSHOT_* variables) reach the running server.
 */

const FLAGS = ['snapshot-max-per-scope', 'snapshot-max-scope-mib', 'snapshot-max-total-mib', 'snapshot-idle-seconds'];

test('server --help documents every snapshot cap with its variable and default; a cap below 1 is refused before the server starts', async () => {
  const help = await runSyncline(['server', '--help']);
  assert.equal(help.code, 0, help.stderr);
  for (const [flag, env, fallback] of [
    ['snapshot-max-per-scope', 'SYNCLINE_SNAPSHOT_MAX_PER_SCOPE', '3'],
    ['snapshot-max-scope-mib', 'SYNCLINE_SNAPSHOT_MAX_SCOPE_MIB', '1024'],
    ['snapshot-max-total-mib', 'SYNCLINE_SNAPSHOT_MAX_TOTAL_MIB', '4096'],
    ['snapshot-idle-seconds', 'SYNCLINE_SNAPSHOT_IDLE_SECONDS', '120'],
  ]) {
    assert.match(help.stdout, new RegExp(`--${flag} <value> .*\\(env ${env}; default ${fallback}\\)`));
  }
  const dir = tempDir('syncline-snapshot-flags-');
  try {
    const config = join(dir.path, 'shared.json');
    writeFileSync(config, JSON.stringify({ auth: { hs256_secret: JWT_SECRET }, tables: SHARED_TEST_TABLES }));
    for (const flag of FLAGS) {
      const run = await runSyncline(['server', '--data', join(dir.path, 'data'), '--http-port', '0', '--shared-config', config, `--${flag}`, '0']);
      assert.notEqual(run.code, 0);
      assert.match(run.stderr + run.stdout, new RegExp(`--${flag} must be at least 1, got 0`));
    }
  } finally {
    dir.remove();
  }
});

test('a server started with --snapshot-max-per-scope 1 and --snapshot-max-scope-mib 1 holds them', { skip: (await realPostgresReachable()) ? false : 'PostgreSQL is not reachable' }, async () => {
  const dir = tempDir('syncline-snapshot-caps-');
  const scratch = await createScratchDatabase();
  const config = join(dir.path, 'shared.json');
  writeFileSync(config, JSON.stringify({ auth: { hs256_secret: JWT_SECRET }, tables: SHARED_TEST_TABLES }));
  const server = await startServer({ dataDir: join(dir.path, 'data'), databaseUrl: scratch.url, extraArgs: ['--shared-config', config, '--snapshot-max-per-scope', '1', '--snapshot-max-scope-mib', '1'] });
  const db = new pg.Client({ connectionString: scratch.url });
  try {
    await db.connect();
    // 'small' fits the byte cap; 'big' holds about 2 MiB of rows, past it.
    await db.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) SELECT 'small', 'f' || i, 'folder' FROM generate_series(1, 10) i`);
    await db.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) SELECT 'big', 'f' || i, repeat('x', 1000) FROM generate_series(1, 2000) i`);
    const call = async (user: string, method: string, path: string) => {
      const response = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${await userToken(user)}`, [SOURCE_HEADER]: 'phone' } });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const chunk = (user: string, id: unknown) => call(user, 'GET', SharedRoutes.snapshotChunk.replace(':id', String(id)).replace(':index', '0'));
    const first = await call('small', 'POST', SharedRoutes.snapshots);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal((await chunk('small', first.body.snapshot_id)).status, 200);
    // One snapshot per scope: the second frees the first.
    const second = await call('small', 'POST', SharedRoutes.snapshots);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal((await chunk('small', first.body.snapshot_id)).status, 404);
    assert.equal((await chunk('small', second.body.snapshot_id)).status, 200);
    // Past 1 MiB the build fails, and a reader is told to retry rather than given part of the scope.
    const big = await call('big', 'POST', SharedRoutes.snapshots);
    let status = big.status;
    for (let i = 0; status === 200 && i < 200; i++) {
      const read = await call('big', 'GET', SharedRoutes.snapshotChunk.replace(':id', String(big.body.snapshot_id)).replace(':index', String(i)));
      status = read.body.end === true ? 0 : read.status;
    }
    assert.equal(status, 503);
  } finally {
    await db.end();
    await server.stop();
    await scratch.drop();
    dir.remove();
  }
});
