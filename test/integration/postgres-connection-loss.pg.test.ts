import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Routes } from '../../src/protocol/constants.js';
import { freePort } from '../support/mqtt-fixtures.js';
import { createScratchDatabase, realPostgresReachable, type ScratchDatabase } from '../support/postgres.js';
import { createDeviceToken, finished, spawnScript, spawnSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { assertMirrorMatches, eventually, lineages } from '../support/replication-check.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { tempDir } from '../support/temp.js';

/**
 * A real server on real PostgreSQL whose connections are killed under it: a loop
 * terminates every backend of the server's database (as a failover, a pooler's
 * idle timeout or an operator would), and once the database is made unreachable
 * altogether for a few seconds. An HTTP agent and an MQTT agent drain meanwhile.
 * The process must stay alive, /healthz must say `degraded` during the outage and
 * `ok` after, and every row must arrive exactly once.
 */
const APP = fileURLToPath(new URL('../support/sqlite-app.ts', import.meta.url));
const TABLES = 5;
const ROWS = 60;
/** Journal changes per table: the inserts, 30 updates (the keyless log_lines takes none) and 20 more inserts. */
const expected = (table: string) => ROWS + (table === 'log_lines' ? 0 : 30) + 20;
const skip = (await realPostgresReachable()) ? false : 'PostgreSQL is not reachable';

async function app(db: string, ...args: (string | number)[]): Promise<void> {
  const result = await finished(spawnScript(APP, [db, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${args.join(' ')} failed: ${result.stderr}`);
}

async function health(server: ServerProcess): Promise<{ status: number; body: { status: string; problems?: { component: string; reason: string }[] } }> {
  const response = await fetch(`${server.url}${Routes.health}`);
  return { status: response.status, body: (await response.json()) as never };
}

/** Terminates every other backend of the database every `everyMs` until stopped; counts rounds and kills. */
function terminateLoop(url: string, everyMs: number): { stop(atLeastRounds: number): Promise<{ rounds: number; killed: number }> } {
  let running = true;
  let rounds = 0;
  let killed = 0;
  const done = (async () => {
    while (running) {
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
        const { rows } = await client.query<{ t: boolean }>('SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
        rounds += 1;
        killed += rows.filter((r) => r.t).length;
      } catch {
        // The database may be refusing connections for a moment; try again next round.
      } finally {
        await client.end().catch(() => {});
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    /** Stops after at least `atLeastRounds` rounds (waiting at most 20 more intervals): on a quiet machine the rest of the test can end before the loop ran that often. */
    async stop(atLeastRounds: number) {
      for (let waits = 0; rounds < atLeastRounds && waits < 20; waits++) await new Promise((resolve) => setTimeout(resolve, everyMs));
      running = false;
      await done;
      return { rounds, killed };
    },
  };
}

describe('PostgreSQL drops connections under a running server', { skip }, () => {
  const dir = tempDir('syncline-pg-loss-');
  let scratch: ScratchDatabase;
  let proxy: TcpProxy;
  let server: ServerProcess;
  let mqttPort: number;

  before(async () => {
    scratch = await createScratchDatabase();
    const target = new URL(scratch.url);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(scratch.url);
    viaProxy.port = String(proxy.port);
    mqttPort = await freePort();
    server = await startServer({ dataDir: join(dir.path, 'cloud'), databaseUrl: viaProxy.toString(), extraArgs: ['--schema-policy', 'auto', '--mqtt-port', String(mqttPort)] });
  });
  after(async () => {
    await server?.stop();
    await proxy?.close();
    await scratch?.drop();
    dir.remove();
  });

  test('backends terminated in a loop and a 2 s outage: the process lives, healthz degrades and recovers, every row arrives once', async () => {
    const httpDb = join(dir.path, 'http.db');
    const mqttDb = join(dir.path, 'mqtt.db');
    const httpDevice = await createDeviceToken(server, 'http');
    const mqttDevice = await createDeviceToken(server, 'mqtt');
    await Promise.all([httpDb, mqttDb].map(async (db) => {
      await app(db, 'setup');
      await app(db, 'insert', ROWS, 1);
    }));
    const batching = ['--max-batch-rows', '20', '--flush-interval-ms', '50'];
    const agents = [
      spawnSyncline(['agent', '--db', httpDb, '--server', server.url, '--token', httpDevice.token, ...batching]),
      spawnSyncline(['agent', '--db', mqttDb, '--transport', 'mqtt', '--mqtt-url', `mqtt://127.0.0.1:${mqttPort}`, '--device-id', mqttDevice.device_id, '--token', mqttDevice.token, ...batching]),
    ];
    const exits = agents.map((a) => finished(a));
    const killer = terminateLoop(scratch.url, 400);
    try {
      await eventually('the first batches acked', async () => (await lineages(server, httpDevice.device_id)).some((l) => l.last_seq > 0));

      await proxy.cut();
      await eventually('healthz reports the database down', async () => {
        const h = await health(server);
        return h.status === 503 && h.body.status === 'degraded' && h.body.problems?.some((p) => p.component === 'database' && /database unreachable/.test(p.reason)) === true;
      }, 10_000);
      await Promise.all([httpDb, mqttDb].map((db) => app(db, 'update', 30, 1)));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await proxy.restore();
      await eventually('healthz ok again', async () => {
        const h = await health(server);
        return h.status === 200 && h.body.status === 'ok';
      }, 10_000);

      await Promise.all([httpDb, mqttDb].map((db) => app(db, 'insert', 20, ROWS + 1)));
      let found: Awaited<ReturnType<typeof lineages>> = [];
      await eventually('every change of both devices ingested', async () => {
        found = [...(await lineages(server, httpDevice.device_id)), ...(await lineages(server, mqttDevice.device_id))];
        return found.length === 2 * TABLES && found.every((l) => l.rows_received === expected(l.source_table));
      }, 60_000).catch((error: Error) => {
        throw new Error(`${error.message}: ${JSON.stringify(found.map((l) => [l.device_id === httpDevice.device_id ? 'http' : 'mqtt', l.source_table, l.status, l.rows_received]))}\n${server.logs().slice(-4000)}`);
      });
    } finally {
      const { rounds, killed } = await killer.stop(10);
      assert.ok(rounds >= 10 && killed >= 10, `the loop ran ${rounds} rounds and killed ${killed} backends`);
      for (const a of agents) a.kill('SIGTERM');
      await Promise.all(exits);
    }
    assert.equal(server.child.exitCode, null, `the server died:\n${server.logs().slice(-3000)}`);
    for (const [db, device] of [[httpDb, httpDevice], [mqttDb, mqttDevice]] as const) {
      for (const lineage of await lineages(server, device.device_id)) {
        assert.equal(lineage.status, 'active', `${lineage.source_table}: ${JSON.stringify(lineage)}`);
        await assertMirrorMatches(server, db, lineage);
      }
    }
  });
});
