import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { revokeDevice } from '../../src/cloud/auth/devices.js';
import { CloudServer } from '../../src/cloud/server.js';
import type { DownlinkMessage } from '../../src/protocol/control.js';
import { deviceRoot, deviceTopic } from '../../src/protocol/topics.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { deviceState, newDevice } from '../support/cloud-fixtures.js';
import { makeCerts, mosquittoClient, mosquittoClientsInstalled, type TestCerts } from '../support/mqtt-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * The embedded broker's security, driven by a client that is not ours
 * (mosquitto_pub / mosquitto_sub): who may connect, publish and subscribe where,
 * and that a refused message stores nothing.
 */

const ITEMS: TableSpec = { table: 'items', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }] };
const skip = mosquittoClientsInstalled ? false : 'mosquitto-clients is not installed (apt-get install mosquitto-clients)';

type Device = Awaited<ReturnType<typeof newDevice>>;

describeEachStore('embedded MQTT broker security', (ctx) => {
  let server: CloudServer;
  let dir: ReturnType<typeof tempDir>;
  let certs: TestCerts;
  let port: number;
  let tlsPort: number;
  const logs: string[] = [];

  before(async () => {
    dir = tempDir('syncline-mqtt-security-');
    certs = makeCerts(dir.path);
    const { readFileSync } = await import('node:fs');
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
    server = await CloudServer.start({
      store: ctx.store,
      httpPort: 0,
      adminToken: 'test-admin-token-0123456789',
      schemaPolicy: 'auto',
      logger,
      mqtt: { port: 0, tls: { port: 0, cert: readFileSync(certs.serverCert, 'utf8'), key: readFileSync(certs.serverKey, 'utf8'), ca: readFileSync(certs.ca, 'utf8') } },
    });
    port = Number(new URL(server.mqtt!.url).port);
    tlsPort = Number(new URL(server.mqtt!.tlsUrl!).port);
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  const batchFile = (device: Device, extra: Record<string, unknown> = {}, name = 'items'): { path: string; batchId: string } => {
    const batch = { ...wireBatch({ ...ITEMS, table: name }, [{ seq: 1, op: 'insert', pk: [1n], row: [1n, 'one'] }], { epoch: uuidv7() }), ...extra };
    const path = join(dir.path, `${batch.batch_id}.json`);
    writeFileSync(path, JSON.stringify(batch));
    return { path, batchId: batch.batch_id };
  };
  const login = (device: Device, password = device.token) => ['-h', '127.0.0.1', '-p', String(port), '-i', device.device_id, '-u', device.device_id, '-P', password];
  const root = (device: Device) => deviceRoot(device.project_id, device.device_id);

  test('a device publishes with its token; the answer waits in its persistent session; a repeated delivery changes nothing; tenant fields in the payload are dropped', { skip }, async () => {
    const device = await newDevice(ctx.store, 'mqtt-ok');
    const other = await newDevice(ctx.store, 'mqtt-other');
    const control = deviceTopic(root(device), 'control');
    const subscribed = await mosquittoClient('mosquitto_sub', [...login(device), '-c', '-q', '1', '-t', control, '-E']);
    assert.equal(subscribed.code, 0, subscribed.stderr);
    const { path, batchId } = batchFile(device, { org_id: 'evil-org', project_id: 'evil', device_id: other.device_id });
    // QoS 0, so the publisher is gone before the answers: at QoS 1 it would wait for the PUBACK, which leaves with the answer.
    const published = await mosquittoClient('mosquitto_pub', [...login(device), '-c', '-q', '0', '-t', deviceTopic(root(device), 'rowBatch'), '-f', path, '--repeat', '2']);
    assert.equal(published.code, 0, published.stderr);
    const received = await mosquittoClient('mosquitto_sub', [...login(device), '-c', '-q', '1', '-t', control, '-C', '2', '-W', '20']);
    assert.equal(received.code, 0, received.stderr);
    const answers = received.stdout.trim().split('\n').map((line) => JSON.parse(line) as DownlinkMessage);
    assert.deepEqual(answers.map((a) => (a.type === 'batch_ack' ? [a.ack.batch_id, a.ack.status] : a.type)), [[batchId, 'accepted'], [batchId, 'duplicate']]);
    const state = (await deviceState(ctx.store, device.device_id)) as { lineages: { source_table: string; rows_received: string }[] };
    assert.deepEqual(state.lineages.map((l) => [l.source_table, l.rows_received]), [['items', '1']]);
    assert.deepEqual(((await deviceState(ctx.store, other.device_id)) as { lineages: unknown[] }).lineages, [], 'the payload cannot name another device');
  });

  test('a wrong password, a foreign client id or a revoked device is refused and nothing is stored', { skip }, async () => {
    const device = await newDevice(ctx.store, 'mqtt-refused');
    const topic = deviceTopic(root(device), 'rowBatch');
    const { path } = batchFile(device);
    const failures = server.mqtt!.stats.authFailures;
    const wrong = await mosquittoClient('mosquitto_pub', [...login(device, `${device.token.slice(0, -1)}x`), '-q', '1', '-t', topic, '-f', path]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /bad user name or password|not authori[sz]ed/i);
    const foreignId = await mosquittoClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-i', 'not-the-device', '-u', device.device_id, '-P', device.token, '-q', '1', '-t', topic, '-f', path]);
    assert.notEqual(foreignId.code, 0);
    await revokeDevice(ctx.store, device.device_id);
    const revoked = await mosquittoClient('mosquitto_pub', [...login(device), '-q', '1', '-t', topic, '-f', path]);
    assert.notEqual(revoked.code, 0);
    assert.equal(server.mqtt!.stats.authFailures, failures + 3);
    assert.deepEqual(((await deviceState(ctx.store, device.device_id)) as { lineages: unknown[] }).lineages, []);
  });

  test("publishing under another device's root or on a control topic is denied, logged with the device id, counted, and stores nothing", { skip }, async () => {
    const device = await newDevice(ctx.store, 'mqtt-attacker');
    const victim = await newDevice(ctx.store, 'mqtt-victim');
    const before = { device: await deviceState(ctx.store, device.device_id), victim: await deviceState(ctx.store, victim.device_id) };
    const denied = server.mqtt!.stats.deniedPublishes;
    const { path } = batchFile(device);
    const attempts = [deviceTopic(root(victim), 'rowBatch'), deviceTopic(root(device), 'control'), deviceTopic(root(victim), 'control'), 'syncline/other-project/' + device.device_id + '/sync/rows/batch', '$SYS/broker/x'];
    for (const topic of attempts) {
      const run = await mosquittoClient('mosquitto_pub', [...login(device), '-q', '1', '-t', topic, '-f', path]);
      assert.notEqual(run.code, 0, `publishing on ${topic} must fail (the broker drops the connection)`);
    }
    assert.equal(server.mqtt!.stats.deniedPublishes, denied + attempts.length);
    const lines = logs.filter((l) => l.includes('MQTT publish denied') && l.includes(device.device_id));
    assert.equal(lines.length, attempts.length, 'each denial is logged with the device id');
    assert.deepEqual({ device: await deviceState(ctx.store, device.device_id), victim: await deviceState(ctx.store, victim.device_id) }, before);
  });

  test("subscribing to another device's downlink or with a wildcard is refused", { skip }, async () => {
    const device = await newDevice(ctx.store, 'mqtt-snoop');
    const victim = await newDevice(ctx.store, 'mqtt-snooped');
    const denied = server.mqtt!.stats.deniedSubscribes;
    for (const filter of [deviceTopic(root(victim), 'control'), 'syncline/#', `${root(device)}/#`, deviceTopic(root(device), 'rowBatch')]) {
      const run = await mosquittoClient('mosquitto_sub', [...login(device), '-q', '1', '-t', filter, '-E']);
      assert.match(run.stderr, /denied/i, `subscribing to ${filter} must be refused`);
    }
    assert.equal(server.mqtt!.stats.deniedSubscribes, denied + 4);
  });

  test('over TLS a verified client certificate names the device; a certificate from another CA or for an unknown device is refused', { skip }, async () => {
    const device = await newDevice(ctx.store, 'mqtt-mtls');
    const tls = (cert: { cert: string; key: string }, id = device.device_id) => ['-h', '127.0.0.1', '-p', String(tlsPort), '--cafile', certs.ca, '--cert', cert.cert, '--key', cert.key, '-i', id, '-q', '1'];
    const { path } = batchFile(device);
    const topic = deviceTopic(root(device), 'rowBatch');
    const good = await mosquittoClient('mosquitto_pub', [...tls(certs.client(device.device_id)), '-t', topic, '-f', path]);
    assert.equal(good.code, 0, good.stderr);
    await eventually('the batch sent with a client certificate is stored', async () => ((await deviceState(ctx.store, device.device_id)) as { lineages: unknown[] }).lineages.length === 1, 20_000);
    const rogue = await mosquittoClient('mosquitto_pub', [...tls(certs.client(device.device_id, 'rogue')), '-t', topic, '-f', path]);
    assert.notEqual(rogue.code, 0, 'a certificate the broker cannot verify does not identify anyone');
    const unknown = crypto.randomUUID();
    const stranger = await mosquittoClient('mosquitto_pub', [...tls(certs.client(unknown), unknown), '-t', `syncline/default/${unknown}/sync/rows/batch`, '-f', path]);
    assert.notEqual(stranger.code, 0);
  });
});
