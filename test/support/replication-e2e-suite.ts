import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createScratchDatabase, realPostgresReachable, type ScratchDatabase } from './postgres.js';
import { createDeviceToken, finished, runSyncline, spawnScript, spawnSyncline, startServer, type ServerProcess } from './processes.js';
import { assertMirrorMatches, eventually, lineages } from './replication-check.js';
import { tempDir } from './temp.js';

/**
 * The whole path with real processes: an app process writes a SQLite file, the
 * `syncline agent` process ships it, the `syncline server` process materializes it,
 * and every row of every table is compared with the mirror, value by value.
 * One suite, defined once per store by test/integration/e2e-replication-{pglite,postgres}.test.ts
 * so the two run in parallel.
 */
const APP = fileURLToPath(new URL('./sqlite-app.ts', import.meta.url));
const TABLES = ['items', 'order_lines', 'kv', 'log_lines', 'ünïcødé "tåble", 1'];

async function app(db: string, ...args: (string | number)[]): Promise<void> {
  const result = await finished(spawnScript(APP, [db, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${args.join(' ')} failed: ${result.stderr}`);
}

async function agentOnce(db: string, server: ServerProcess, token: string, extra: string[] = []): Promise<void> {
  const result = await runSyncline(['agent', '--db', db, '--server', server.url, '--token', token, '--once', ...extra]);
  assert.equal(result.code, 0, `agent --once failed: ${result.stderr}`);
}

async function assertAllTablesMatch(server: ServerProcess, db: string, deviceId: string): Promise<void> {
  const found = await lineages(server, deviceId);
  assert.deepEqual(found.map((l) => l.source_table).sort(), [...TABLES].sort());
  for (const lineage of found) {
    assert.equal(lineage.status, 'active', `${lineage.source_table}: ${JSON.stringify(lineage)}`);
    await assertMirrorMatches(server, db, lineage);
  }
}

export async function defineReplicationEndToEnd(kind: 'pglite' | 'postgres'): Promise<void> {
  const backend: { name: string; scratch?: () => Promise<ScratchDatabase> } = kind === 'pglite' ? { name: 'pglite' } : { name: 'postgres', scratch: createScratchDatabase };
  const skip = kind === 'postgres' && !(await realPostgresReachable()) ? 'PostgreSQL is not reachable' : false;
  describe(`end to end on ${backend.name}`, { skip }, () => {
    const dir = tempDir('syncline-e2e-');
    let scratch: ScratchDatabase | undefined;
    let server: ServerProcess;

    before(async () => {
      scratch = await backend.scratch?.();
      server = await startServer({ dataDir: join(dir.path, 'cloud'), databaseUrl: scratch?.url, extraArgs: ['--schema-policy', 'auto'] });
    });
    after(async () => {
      await server?.stop();
      await scratch?.drop();
      dir.remove();
    });

    test('pre-existing rows, then changes while the agent is stopped, arrive exactly', async () => {
      const db = join(dir.path, 'exact.db');
      const device = await createDeviceToken(server, 'exact');
      await app(db, 'setup');
      await app(db, 'insert', 40, 1);
      await agentOnce(db, server, device.token);
      await assertAllTablesMatch(server, db, device.device_id);

      await app(db, 'update', 15, 1);
      await app(db, 'rekey', 5, 1);
      await app(db, 'delete', 5, 30);
      await app(db, 'rollback');
      await app(db, 'add-column');
      await app(db, 'insert', 20, 41);
      await agentOnce(db, server, device.token);
      await assertAllTablesMatch(server, db, device.device_id);
    });

    test('an agent SIGKILLed mid-drain and restarted loses nothing and duplicates nothing', async () => {
      const db = join(dir.path, 'killed.db');
      const device = await createDeviceToken(server, 'killed');
      await app(db, 'setup');
      const agent = spawnSyncline(['agent', '--db', db, '--server', server.url, '--token', device.token, '--max-batch-rows', '50', '--flush-interval-ms', '100']);
      const agentExit = finished(agent);
      await app(db, 'insert', 600, 1);
      await eventually('a few batches acked', async () => (await lineages(server, device.device_id)).some((l) => l.last_seq > 0));
      agent.kill('SIGKILL');
      await agentExit;
      await agentOnce(db, server, device.token);
      await assertAllTablesMatch(server, db, device.device_id);
      for (const lineage of await lineages(server, device.device_id)) {
        assert.equal(lineage.rows_received, 600, `${lineage.source_table} ingested ${lineage.rows_received} journal rows for 600 changes`);
      }
    });

    test('the server stopped during a drain and restarted: the agent retries and catches up', async () => {
      const db = join(dir.path, 'restart.db');
      const device = await createDeviceToken(server, 'restart');
      await app(db, 'setup');
      await app(db, 'insert', 400, 1);
      const port = new URL(server.url).port;
      // Backoff capped at 1 s: the restart is seen at once rather than up to 30 s later (the default cap).
      const agent = spawnSyncline(['agent', '--db', db, '--server', server.url, '--token', device.token, '--max-batch-rows', '40', '--flush-interval-ms', '100', '--retry-max-ms', '1000']);
      const agentExit = finished(agent);
      await eventually('a few batches acked', async () => (await lineages(server, device.device_id)).some((l) => l.last_seq > 0));
      await server.stop();
      await app(db, 'insert', 100, 401);
      server = await startServer({ dataDir: join(dir.path, 'cloud'), databaseUrl: scratch?.url, adminToken: server.adminToken, httpPort: Number(port), extraArgs: ['--schema-policy', 'auto'] });
      await eventually('every row mirrored after the restart', async () => {
        const found = await lineages(server, device.device_id);
        return found.length === TABLES.length && found.every((l) => l.rows_received === 500);
      }, 120_000);
      agent.kill('SIGTERM');
      const exit = await agentExit;
      assert.equal(exit.code, 0, exit.stderr);
      await assertAllTablesMatch(server, db, device.device_id);
    });
  });
}
