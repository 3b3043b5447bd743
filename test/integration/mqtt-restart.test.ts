import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import { Agent } from '../../src/device/agent.js';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { MqttTransport } from '../../src/transport/mqtt-transport.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { finished, spawnScript } from '../support/processes.js';
import { assertMirrorMatches, eventually, lineages } from '../support/replication-check.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * The cloud (and with it the embedded broker) goes away mid-stream and comes
 * back on the same port: what the broker held in memory is gone, answers were
 * lost, the device resends. Afterwards every captured change is in the cloud
 * exactly once and every mirror equals its source table.
 */

const APP = fileURLToPath(new URL('../support/sqlite-app.ts', import.meta.url));
const ADMIN_TOKEN = 'test-admin-token-0123456789';
const logger = pino({ level: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'silent' });

async function app(dbPath: string, scenario: string, ...args: number[]): Promise<void> {
  const result = await finished(spawnScript(APP, [dbPath, scenario, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${scenario} failed: ${result.stderr}`);
}

describeEachStore('MQTT restarts mid-stream', (ctx) => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-mqtt-restart-');
  });
  after(() => dir.remove());

  const start = (port: number) => CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger, mqtt: { port } });

  test('server and broker restarted twice while a device drains: no loss, no duplicates', async () => {
    const path = join(dir.path, 'restart.db');
    await app(path, 'setup');
    const db = BetterSqlite3Driver.open(path);
    await ensureCapture(db);
    await db.close();
    await app(path, 'insert', 150, 1);
    await app(path, 'update', 80, 1);
    await app(path, 'delete', 10, 1);
    const check = BetterSqlite3Driver.open(path);
    const counts = await check.all<{ tbl: string; n: bigint }>('SELECT tbl, count(*) AS n FROM _syncline_journal JOIN _syncline_schemas ON _syncline_schemas.id = schema_id GROUP BY tbl');
    const captured = new Map(counts.map((r) => [r.tbl, Number(r.n)]));
    await check.close();

    let server = await start(0);
    const port = Number(new URL(server.mqtt!.url).port);
    const device = await newDevice(ctx.store, 'restart-device');
    const transport = new MqttTransport({ url: server.mqtt!.url, deviceId: device.device_id, token: device.token, ackTimeoutMs: 2000, logger });
    const agent = new Agent({ dbPath: path, transport, logger, pollIntervalMs: 20, publisher: { maxBatchRows: 15, flushIntervalMs: 20, retryBaseMs: 20, retryMaxMs: 300 } });
    const running = agent.run();
    try {
      for (let restart = 1; restart <= 2; restart++) {
        const acked = (await agent.status()).rows_acked;
        await eventually(`progress before restart ${restart}`, async () => (await agent.status()).rows_acked > acked + 40, 60_000);
        await server.stop();
        server = await start(port);
      }
      const total = [...captured.values()].reduce((a, b) => a + b, 0);
      await eventually('the device drained', async () => (await agent.status()).pending_total === 0 && (await agent.status()).in_flight === 0, 120_000);
      assert.ok((await agent.status()).rows_acked >= total - captured.size, 'everything was acked (the newest entry per table may stay in the journal)');
      const server_ = { url: server.url, adminToken: ADMIN_TOKEN };
      const found = await lineages(server_, device.device_id);
      assert.equal(found.length, captured.size);
      for (const lineage of found) {
        assert.equal(lineage.rows_received, captured.get(lineage.source_table), `${lineage.source_table}: each captured change taken exactly once`);
        await assertMirrorMatches(server_, path, lineage);
      }
    } finally {
      await agent.stop();
      await running.catch(() => {});
      await transport.close();
      await server.stop();
    }
  });
});
