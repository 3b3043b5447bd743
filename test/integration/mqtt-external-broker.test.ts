import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { CloudServer } from '../../src/cloud/server.js';
import { Agent } from '../../src/device/agent.js';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { deviceRoot, deviceTopic } from '../../src/protocol/topics.js';
import { MqttTransport } from '../../src/transport/mqtt-transport.js';
import { wireBatch } from '../support/cloud-batches.js';
import { deviceState, newDevice } from '../support/cloud-fixtures.js';
import { freePort, mosquittoClient, mosquittoClientsInstalled, mosquittoInstalled, REAL_MOSQUITTO_URL, realMosquittoReachable, startMosquitto, type MosquittoProcess } from '../support/mqtt-fixtures.js';
import { finished, runSyncline, spawnScript } from '../support/processes.js';
import { assertMirrorMatches, eventually, lineages } from '../support/replication-check.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * External broker mode: servers reach devices through a Mosquitto, sharing the
 * load with a shared subscription. First the machine's own Mosquitto on
 * 127.0.0.1:1883, then one of the test's own configured by
 * `syncline admin mqtt-config`, which must enforce the embedded broker's rules.
 */

const APP = fileURLToPath(new URL('../support/sqlite-app.ts', import.meta.url));
const ADMIN_TOKEN = 'test-admin-token-0123456789';
const logger = pino({ level: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'silent' });
const realSkip = !mosquittoClientsInstalled ? 'mosquitto-clients is not installed' : !realMosquittoReachable ? `no MQTT broker at ${REAL_MOSQUITTO_URL}` : false;
if (realSkip && process.env.CI === 'true') throw new Error(`external broker tests cannot run in CI: ${realSkip}`);
const ownSkip = !mosquittoInstalled || !mosquittoClientsInstalled ? 'mosquitto / mosquitto-clients are not installed' : false;

async function app(dbPath: string, scenario: string, ...args: number[]): Promise<void> {
  const result = await finished(spawnScript(APP, [dbPath, scenario, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${scenario} failed: ${result.stderr}`);
}

/** A device file with capture installed and changes journaled; returns the changes per table. */
async function preparedDevice(path: string, steps: number): Promise<Map<string, number>> {
  await app(path, 'setup');
  const db = BetterSqlite3Driver.open(path);
  await ensureCapture(db);
  await db.close();
  await app(path, 'insert', steps, 1);
  await app(path, 'update', Math.ceil(steps / 3), 1);
  const check = BetterSqlite3Driver.open(path);
  try {
    const counts = await check.all<{ tbl: string; n: bigint }>('SELECT tbl, count(*) AS n FROM _syncline_journal JOIN _syncline_schemas ON _syncline_schemas.id = schema_id GROUP BY tbl');
    return new Map(counts.map((r) => [r.tbl, Number(r.n)]));
  } finally {
    await check.close();
  }
}

describeEachStore('external MQTT broker', (ctx) => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-mqtt-external-');
  });
  after(() => dir.remove());

  const startServer = (url: string, shareGroup: string) =>
    CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger, mqtt: { url, shareGroup } });

  async function drain(path: string, transport: MqttTransport, during?: (agent: Agent) => Promise<void>): Promise<Agent> {
    const agent = new Agent({ dbPath: path, transport, logger, pollIntervalMs: 20, publisher: { maxBatchRows: 10, flushIntervalMs: 20, retryBaseMs: 20, retryMaxMs: 300 } });
    const running = agent.run();
    try {
      await during?.(agent);
      await eventually('the device drained', async () => (await agent.status()).pending_total === 0 && (await agent.status()).in_flight === 0, 120_000);
    } finally {
      await agent.stop();
      await running.catch(() => {});
      await transport.close();
    }
    return agent;
  }

  async function assertArrivedOnce(server: CloudServer, deviceId: string, path: string, captured: Map<string, number>): Promise<void> {
    const http = { url: server.url, adminToken: ADMIN_TOKEN };
    const found = await lineages(http, deviceId);
    assert.equal(found.length, captured.size);
    for (const lineage of found) {
      assert.equal(lineage.rows_received, captured.get(lineage.source_table), `${lineage.source_table}: every change exactly once`);
      await assertMirrorMatches(http, path, lineage);
    }
  }

  test(`two servers share the device load through ${REAL_MOSQUITTO_URL}; one stops mid-stream and the other carries on`, { skip: realSkip }, async () => {
    const group = `syncline-test-${randomBytes(4).toString('hex')}`;
    const first = await startServer(REAL_MOSQUITTO_URL, group);
    const second = await startServer(REAL_MOSQUITTO_URL, group);
    let firstStopped = false;
    try {
      const device = await newDevice(ctx.store, 'external-real');
      const path = join(dir.path, 'real.db');
      const captured = await preparedDevice(path, 60);
      const transport = new MqttTransport({ url: REAL_MOSQUITTO_URL, deviceId: device.device_id, token: device.token, ackTimeoutMs: 2000, logger });
      await drain(path, transport, async (agent) => {
        await eventually('both servers took batches', async () => first.mqtt!.stats.batchesAcked > 0 && second.mqtt!.stats.batchesAcked > 0 && (await agent.status()).rows_acked > 0);
        await first.stop();
        firstStopped = true;
      });
      await assertArrivedOnce(second, device.device_id, path, captured);
    } finally {
      if (!firstStopped) await first.stop();
      await second.stop();
    }
  });

  test('mqtt-config files make a Mosquitto enforce the rules; the server and devices work through it, across a broker restart', { skip: ownSkip }, async () => {
    const http = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger });
    const device = await newDevice(ctx.store, 'external-own');
    const other = await newDevice(ctx.store, 'external-other');
    const serverPassword = randomBytes(12).toString('hex');
    const out = join(dir.path, `mosquitto-${ctx.kind}`);
    const port = await freePort();
    const env = { SYNCLINE_ADMIN_TOKEN: ADMIN_TOKEN, SYNCLINE_MQTT_SERVER_PASSWORD: serverPassword };
    const base = ['admin', 'mqtt-config', '--server', http.url, '--out-dir', out, '--listener-port', String(port), '--listener-host', '127.0.0.1', '--json'];
    // Mosquitto reads 0 as "no limit": refused here, like any window it cannot hold, before a file is written.
    for (const bad of ['0', '65536', 'many']) {
      const refused = await runSyncline([...base, '--max-inflight-messages', bad], env);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /--max-inflight-messages must be/);
      assert.ok(!existsSync(join(out, 'syncline-listener.conf')), 'nothing written for a refused option');
    }
    const generated = await runSyncline(base, env);
    await http.stop();
    assert.equal(generated.code, 0, generated.stderr);
    const result = JSON.parse(generated.stdout) as { files: { conf: string; passwd: string }; devices: number };
    assert.ok(result.devices >= 2);
    assert.ok(!readFileSync(result.files.passwd, 'utf8').includes(device.token), 'tokens are stored hashed');
    const conf = readFileSync(result.files.conf, 'utf8').split('\n').filter(Boolean);
    // The server's account takes every batch as a QoS 1 delivery: Mosquitto's default window of 20 would pace the fleet.
    assert.ok(conf.includes('max_inflight_messages 1000'), conf.join('\n'));
    let broker: MosquittoProcess = await startMosquitto(out, conf, port);
    const url = `mqtt://127.0.0.1:${port}`;
    let server: CloudServer | undefined;
    try {
      server = await startServer(`mqtt://syncline-server:${serverPassword}@127.0.0.1:${port}`, 'syncline');
      const login = (d: { device_id: string }, password: string) => ['-h', '127.0.0.1', '-p', String(port), '-i', d.device_id, '-u', d.device_id, '-P', password, '-q', '1'];
      const batch = join(out, 'batch.json');
      writeFileSync(batch, JSON.stringify(wireBatch({ table: 'items', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }] }, [{ seq: 1, op: 'insert', pk: [1n], row: [1n] }], { epoch: uuidv7() })));
      const otherRoot = deviceRoot(other.project_id, other.device_id);

      const wrong = await mosquittoClient('mosquitto_pub', [...login(device, 'sld_wrong'), '-t', deviceTopic(deviceRoot(device.project_id, device.device_id), 'rowBatch'), '-f', batch]);
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /not authori[sz]ed|bad user name or password/i);
      const anonymous = await mosquittoClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-t', deviceTopic(otherRoot, 'rowBatch'), '-f', batch]);
      assert.notEqual(anonymous.code, 0);
      // The other device waits on its control topic; the attacker publishes as itself on the other's root and control topic.
      assert.equal((await mosquittoClient('mosquitto_sub', [...login(other, other.token), '-c', '-t', deviceTopic(otherRoot, 'control'), '-E'])).code, 0);
      for (const topic of [deviceTopic(otherRoot, 'rowBatch'), deviceTopic(otherRoot, 'control'), deviceTopic(deviceRoot(device.project_id, device.device_id), 'control')]) {
        await mosquittoClient('mosquitto_pub', [...login(device, device.token), '-t', topic, '-f', batch]);
      }
      const forged = await mosquittoClient('mosquitto_sub', [...login(other, other.token), '-c', '-t', deviceTopic(otherRoot, 'control'), '-C', '1', '-W', '2']);
      assert.equal(forged.stdout, '', 'no forged message reached the other device');
      assert.deepEqual(((await deviceState(ctx.store, other.device_id)) as { lineages: unknown[] }).lineages, []);
      assert.deepEqual(((await deviceState(ctx.store, device.device_id)) as { lineages: unknown[] }).lineages, []);

      const path = join(dir.path, `own-${ctx.kind}.db`);
      const captured = await preparedDevice(path, 60);
      const transport = new MqttTransport({ url, deviceId: device.device_id, token: device.token, ackTimeoutMs: 2000, logger });
      await drain(path, transport, async (agent) => {
        await eventually('progress before the broker restart', async () => (await agent.status()).rows_acked > 30);
        await broker.stop();
        broker = await startMosquitto(out, conf, port);
      });
      await assertArrivedOnce(server, device.device_id, path, captured);
    } finally {
      await server?.stop();
      await broker.stop();
    }
  });
});
