import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import { Agent } from '../../src/device/agent.js';
import { MqttTransport } from '../../src/transport/mqtt-transport.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { freePort } from '../support/mqtt-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/** Telemetry batches over MQTT: the same ingest, answered on the control topic after commit. */

const logger = pino({ level: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'silent' });

describeEachStore('telemetry over MQTT', (context) => {
  const dir = tempDir('syncline-telemetry-mqtt-');
  let server: CloudServer;

  before(async () => {
    server = await CloudServer.start({ store: context.store, httpPort: 0, adminToken: 'telemetry-admin-token-0123456789', schemaPolicy: 'auto', logger, mqtt: { port: await freePort() } });
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  test('rows of a time table arrive exactly once through the broker', async () => {
    const path = join(dir.path, 'mqtt.db');
    const app = new Database(path);
    app.pragma('journal_mode = WAL');
    app.exec('CREATE TABLE samples (at INTEGER, v INTEGER)');
    const insert = app.prepare('INSERT INTO samples (at, v) VALUES (?, ?)');
    for (let i = 0; i < 75; i++) insert.run(Date.UTC(2026, 5, 1) + i, BigInt(i) * 1_000_000_007n);
    app.close();
    const device = await newDevice(context.store, 'mqtt');
    const transport = new MqttTransport({ url: server.mqtt!.url, deviceId: device.device_id, token: device.token, logger });
    try {
      const agent = new Agent({ dbPath: path, transport, logger, once: true, onceDeadlineMs: 20_000, telemetry: [{ table: 'samples', timeColumn: 'at' }], publisher: { maxBatchRows: 20 } });
      await agent.run();
      assert.equal((await agent.status()).telemetry?.[0]?.acked_seq, 75);
    } finally {
      await transport.close();
    }
    const { rows } = await context.store.query<{ v: string }>(
      `SELECT v.v_num::text AS v FROM telemetry_values v JOIN telemetry_points p ON p.id = v.point_id WHERE v.device_id = $1 AND p.name = 'samples.v' ORDER BY v.ts`,
      [device.device_id],
    );
    assert.deepEqual(rows.map((r) => r.v), Array.from({ length: 75 }, (_, i) => String(BigInt(i) * 1_000_000_007n)));
    const { rows: ledger } = await context.store.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry_segments WHERE device_id = $1', [device.device_id]);
    assert.equal(ledger[0]!.n, 4);
  });
});
