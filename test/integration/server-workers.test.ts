import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { uuidv7 } from 'uuidv7';
import { mqttStatsAnswerSchema } from '../../src/protocol/admin-answers.js';
import type { ControlMessage } from '../../src/protocol/control.js';
import { Routes } from '../../src/protocol/constants.js';
import { MqttTransport } from '../../src/transport/mqtt-transport.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { freePort } from '../support/mqtt-fixtures.js';
import { createScratchDatabase, realPostgresReachable, type ScratchDatabase } from '../support/postgres.js';
import { createDeviceToken, establishedConnections, processTree, runSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { parsePrometheus, sample } from '../support/prometheus.js';
import { eventually } from '../support/replication-check.js';

const TABLE: TableSpec = { table: 'readings', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'note', type: 'TEXT' }] };
const batchOf = (epoch: string, from: number, n: number) =>
  JSON.stringify(wireBatch(TABLE, Array.from({ length: n }, (_, i) => ({ seq: from + i, op: 'insert' as const, pk: [BigInt(from + i)], row: [BigInt(from + i), `note ${from + i}`] })), { epoch }));

/** One request (a POST with `body`, else a GET) on a connection of its own (no keep-alive): the cluster hands each new connection to the next worker. */
function requestAlone(url: string, path: string, token: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const req = request(`${url}${path}`, { method: body === undefined ? 'GET' : 'POST', agent: false, headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
const postAlone = (url: string, token: string, body: string) => requestAlone(url, Routes.rowBatch, token, body);

const workersOf = (server: ServerProcess) => processTree(server.child.pid!).slice(1);

describe('syncline server --workers', { skip: !(await realPostgresReachable()) && 'needs PostgreSQL (SYNCLINE_TEST_PG_URL)' }, () => {
  let scratch: ScratchDatabase;
  let server: ServerProcess;
  let mqttPort: number;
  let db: pg.Client;
  const dataDir = mkdtempSync(join(tmpdir(), 'syncline-workers-'));

  before(async () => {
    scratch = await createScratchDatabase();
    mqttPort = await freePort();
    // At info: the test waits for the primary's line that a replacement worker listens.
    server = await startServer({ dataDir, databaseUrl: scratch.url, env: { SYNCLINE_LOG_LEVEL: 'info' }, extraArgs: ['--workers', '2', '--metrics-port', '0', '--mqtt-port', String(mqttPort)] });
    db = new pg.Client({ connectionString: scratch.url });
    await db.connect();
  });
  after(async () => {
    await db?.end();
    await server?.stop();
    await scratch?.drop();
  });

  test('two workers share one HTTP port: every batch lands once, /metrics on either port sums both', async () => {
    assert.match(server.stdout(), /; 2 worker processes\)/);
    assert.equal(workersOf(server).length, 2);
    const device = await createDeviceToken(server, 'workers-device');
    const epoch = uuidv7();
    const batches = Array.from({ length: 10 }, (_, i) => batchOf(epoch, i * 3 + 1, 3));
    for (const batch of batches) {
      const answer = await postAlone(server.url, device.token, batch);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(JSON.parse(answer.text).status, 'accepted');
    }
    // A redelivery on a new connection (the other worker than the one that stored it) is answered from the ledger.
    assert.equal(JSON.parse((await postAlone(server.url, device.token, batches[0]!)).text).status, 'duplicate');
    const { rows } = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM edge_staged_rows');
    assert.equal(rows[0]!.n, '30');

    const scraped = await fetch(`${server.url}${Routes.metrics}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    assert.equal(scraped.status, 200);
    const viaApi = parsePrometheus(await scraped.text());
    // Ten accepted batches on connections taken in turn by two workers: only a sum over both counts all ten.
    assert.equal(sample(viaApi, 'syncline_ingest_batches_total', { transport: 'http', outcome: 'accepted' }), 10);
    // A fleet figure read from the store is reported once, not once per worker.
    assert.equal(sample(viaApi, 'syncline_devices', { state: 'active' }), 1);
    const metricsUrl = /metrics \(no token\): (\S+)/.exec(server.stdout())?.[1];
    assert.ok(metricsUrl, server.stdout());
    const viaPort = parsePrometheus(await (await fetch(metricsUrl)).text());
    assert.equal(sample(viaPort, 'syncline_ingest_batches_total', { transport: 'http', outcome: 'accepted' }), 10);
  });

  test('every worker runs an embedded broker on the shared MQTT port: devices on each ship and get answers, and a control reaches each from its own broker', async () => {
    assert.match(server.stdout(), new RegExp(`MQTT broker listening on mqtt://127\\.0\\.0\\.1:${mqttPort}`));
    const devices = await Promise.all([0, 1, 2, 3].map((i) => createDeviceToken(server, `mqtt-worker-device-${i}`)));
    const controls = new Map<string, ControlMessage[]>();
    const transports: MqttTransport[] = [];
    try {
      // One at a time: the cluster hands each new connection to the next worker, so the four sessions split over both brokers.
      for (const device of devices) {
        const transport = new MqttTransport({ url: `mqtt://127.0.0.1:${mqttPort}`, deviceId: device.device_id, token: device.token });
        transports.push(transport);
        controls.set(device.device_id, []);
        transport.onControl((control) => controls.get(device.device_id)!.push(control));
        const ack = await transport.sendRowBatch(await transport.encodeRowBatch(JSON.parse(batchOf(uuidv7(), 1, 3))));
        assert.equal(ack.status, 'accepted');
        assert.equal(ack.last_seq, 3);
      }
      const held = workersOf(server).map((pid) => establishedConnections(pid, mqttPort));
      assert.deepEqual(held.sort(), [2, 2], 'each worker holds two device sessions');
      // Whichever worker answers (a connection of its own each time, so both do), the counters are both brokers' sum.
      for (let i = 0; i < 2; i++) {
        const stats = await requestAlone(server.url, Routes.mqttStats, server.adminToken);
        assert.equal(stats.status, 200, stats.text);
        const { mqtt } = mqttStatsAnswerSchema.parse(JSON.parse(stats.text));
        assert.equal(mqtt?.batchesAcked, 4);
        assert.equal(mqtt?.batchesReceived, 4);
      }

      for (const device of devices) {
        const paused = await fetch(`${server.url}${Routes.devicePause.replace(':id', device.device_id)}`, { method: 'POST', headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' }, body: '{}' });
        assert.equal(paused.status, 200, await paused.text());
      }
      await eventually('every device to get its pause', () => devices.every((d) => controls.get(d.device_id)!.some((c) => c.type === 'pause_lineage')), 30_000);
      // Sent once, by the worker whose broker holds the device: a control published into the other broker would reach nobody until its resend.
      const { rows } = await db.query<{ send_count: number }>(`SELECT send_count FROM edge_lineage_controls WHERE type = 'pause_lineage' AND device_id = ANY($1::uuid[])`, [devices.map((d) => d.device_id)]);
      assert.deepEqual(rows.map((r) => r.send_count), [1, 1, 1, 1]);
    } finally {
      await Promise.all(transports.map((t) => t.close()));
    }
  });

  test("a device signing in to one worker's broker closes its older session in the other's, as one broker closes a client id's older connection", async () => {
    const device = await createDeviceToken(server, 'takeover-device');
    const login = { clientId: device.device_id, username: device.device_id, password: device.token, clean: false, protocolVersion: 4 as const, reconnectPeriod: 0 };
    const first = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, login);
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    let second: mqtt.MqttClient | undefined;
    try {
      const [holder, other] = [...workersOf(server)].sort((a, b) => establishedConnections(b, mqttPort) - establishedConnections(a, mqttPort));
      assert.deepEqual([establishedConnections(holder!, mqttPort), establishedConnections(other!, mqttPort)], [1, 0]);
      // The next connection goes to the other worker: only the relay between the workers can close the first.
      second = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, login);
      await Promise.race([firstClosed, new Promise((_, reject) => setTimeout(() => reject(new Error('the older session was not closed')), 10_000))]);
      assert.ok(second.connected, 'the new session stays');
      await eventually('the sessions to settle', () => establishedConnections(holder!, mqttPort) === 0 && establishedConnections(other!, mqttPort) === 1, 10_000);
    } finally {
      first.end(true);
      await second?.endAsync();
    }
  });

  test("the console's live rates count the batches every worker answered", async () => {
    const device = await createDeviceToken(server, 'live-device');
    const epoch = uuidv7();
    const stream = await fetch(`${server.url}${Routes.live}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    const nextFigures = async (): Promise<{ at: string; batches_per_s: number }> => {
      for (;;) {
        const end = buffered.indexOf('\n\n');
        if (end >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = /^data: (.*)$/m.exec(event)?.[1];
          if (data) return JSON.parse(data) as { at: string; batches_per_s: number };
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('the live stream ended');
        buffered += decoder.decode(value, { stream: true });
      }
    };
    try {
      let last = await nextFigures();
      // Six batches on connections of their own: the two workers take three each, so one worker's counters would show three.
      for (let i = 0; i < 6; i++) assert.equal((await postAlone(server.url, device.token, batchOf(epoch, i + 1, 1))).status, 200);
      let counted = 0;
      // Each sample is a rate over the time since the previous one: rate x interval adds up to the batches answered.
      for (let events = 0; events < 8 && counted < 5.99; events++) {
        const figures = await nextFigures();
        counted += (figures.batches_per_s * (Date.parse(figures.at) - Date.parse(last.at))) / 1000;
        last = figures;
      }
      assert.ok(Math.abs(counted - 6) < 0.01, `counted ${counted}`);
    } finally {
      await reader.cancel();
    }
  });

  test('a worker that dies is replaced in its slot: its MQTT device reconnects and ships, the replacement runs a broker, and both ports keep answering', async () => {
    const device = await createDeviceToken(server, 'after-restart');
    const epoch = uuidv7();
    const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
    const ship = async (transport: MqttTransport, seq: number) => (await transport.sendRowBatch(await transport.encodeRowBatch(JSON.parse(batchOf(epoch, seq, 1))))).status;
    const transports = [new MqttTransport({ url: mqttUrl, deviceId: device.device_id, token: device.token })];
    try {
      assert.equal(await ship(transports[0]!, 1), 'accepted');
      const [holder, other] = [...workersOf(server)].sort((a, b) => establishedConnections(b, mqttPort) - establishedConnections(a, mqttPort));
      assert.equal(establishedConnections(holder!, mqttPort), 1, 'one worker holds the device session');
      process.kill(holder!, 'SIGKILL');
      await eventually(
        'a replacement worker',
        () => {
          const now = workersOf(server);
          return now.length === 2 && !now.includes(holder!);
        },
        30_000,
      );
      assert.ok(workersOf(server).includes(other!));
      await eventually('the primary to log the death', () => /server worker died; starting another in its slot/.test(server.logs()), 30_000);
      await eventually('the replacement to listen on both ports', () => /server worker restarted and listening/.test(server.logs()), 30_000);
      // The device's session died with its broker: it reconnects (to whichever worker the cluster hands it) and its next batch lands.
      assert.equal(await ship(transports[0]!, 2), 'accepted');
      // Whichever worker takes each new connection, the replacement included, it answers (a connection handed over before the replacement listens waits for it).
      for (let i = 0; i < 4; i++) assert.equal((await postAlone(server.url, device.token, batchOf(epoch, 100 + i, 1))).status, 200);
      const replacement = workersOf(server).find((pid) => pid !== other)!;
      for (let i = 0; i < 2; i++) {
        const extra = await createDeviceToken(server, `after-restart-${i}`);
        const transport = new MqttTransport({ url: mqttUrl, deviceId: extra.device_id, token: extra.token });
        transports.push(transport);
        assert.equal((await transport.sendRowBatch(await transport.encodeRowBatch(JSON.parse(batchOf(uuidv7(), 1, 1))))).status, 'accepted');
      }
      assert.ok(establishedConnections(replacement, mqttPort) >= 1, 'the replacement worker runs a broker that takes devices');
    } finally {
      await Promise.all(transports.map((t) => t.close()));
    }
  });

  test('SIGTERM to the primary stops every worker and exits 0', async () => {
    const workers = workersOf(server);
    const { code, stderr } = await server.stop('SIGTERM');
    assert.equal(code, 0, stderr);
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), /ESRCH/);
  });
});

describe('syncline server --workers: bad configuration', () => {
  test('more than one worker needs PostgreSQL; the count must be 1 to 64; a worker that cannot listen fails the start', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'syncline-workers-bad-'));
    const onPglite = await runSyncline(['server', '--workers', '2', '--data', dataDir, '--http-port', '0', '--mqtt-port', '0'], { DATABASE_URL: '' });
    assert.equal(onPglite.code, 2);
    assert.match(onPglite.stderr, /--workers 2 needs --database-url \(PostgreSQL\)/);
    for (const bad of ['0', '65']) {
      const result = await runSyncline(['server', '--workers', bad, '--data', dataDir, '--http-port', '0', '--mqtt-port', '0'], { DATABASE_URL: '' });
      assert.equal(result.code, 2, bad);
      assert.match(result.stderr, /--workers must be 1 to 64/);
    }
    if (!(await realPostgresReachable())) return;
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const scratch = await createScratchDatabase();
    try {
      const port = (taken.address() as { port: number }).port;
      const result = await runSyncline(['server', '--workers', '2', '--http-port', String(port), '--mqtt-port', '0'], { DATABASE_URL: scratch.url, SYNCLINE_ADMIN_TOKEN: 'workers-admin-token-0123456789' });
      assert.equal(result.code, 2);
      assert.match(result.stderr, /EADDRINUSE/);
      assert.match(result.stderr, /server worker \d exited \(code \d+\) before it listened; its error is above/);
    } finally {
      taken.close();
      await scratch.drop();
    }
  });
});
