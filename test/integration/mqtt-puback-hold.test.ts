import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { CloudServer } from '../../src/cloud/server.js';
import { deviceRoot, deviceTopic } from '../../src/protocol/topics.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { openTestStore, type TestStore } from '../support/stores.js';

const ITEMS: TableSpec = { table: 'items', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }] };

/**
 * The embedded broker holds a batch's PUBACK until the batch is answered, so both
 * reach the device in one socket write (one read there). Broker-side behaviour, so
 * one store (PGlite) is enough.
 */
describe('embedded MQTT broker: a batch PUBACK leaves with its answer', () => {
  let handle: TestStore;
  let server: CloudServer;
  let client: MqttClient | undefined;

  before(async () => {
    handle = await openTestStore('pglite');
    server = await CloudServer.start({ store: handle.store, httpPort: 0, adminToken: 'test-admin-token-0123456789', schemaPolicy: 'auto', logger: pino({ level: 'silent' }), mqtt: { port: 0 } });
  });
  after(async () => {
    client?.end(true);
    await server.stop();
    await handle.close();
  });

  test('the PUBACK of each batch arrives in the same chunk as its answer, never before it', async () => {
    const device = await newDevice(handle.store, 'puback-hold');
    const root = deviceRoot(device.project_id, device.device_id);
    client = mqtt.connect(server.mqtt!.url, { clientId: device.device_id, username: device.device_id, password: device.token, reconnectPeriod: 0, clean: false });
    await new Promise((resolve) => client!.once('connect', resolve));
    await client.subscribeAsync(deviceTopic(root, 'control'), { qos: 1 });
    const chunks: Buffer[] = [];
    client.stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const answers: string[] = [];
    client.on('message', (_topic, payload) => answers.push((JSON.parse(payload.toString()) as { ack: { batch_id: string } }).ack.batch_id));
    const epoch = uuidv7();
    for (let seq = 1; seq <= 3; seq += 1) {
      const batch = wireBatch(ITEMS, [{ seq, op: 'insert', pk: [BigInt(seq)], row: [BigInt(seq), `row ${seq}`] }], { epoch });
      chunks.length = 0;
      const answered = answers.length;
      await client.publishAsync(deviceTopic(root, 'rowBatch'), JSON.stringify(batch), { qos: 1 });
      // mqtt.js handles the chunk's packets in order: the PUBACK settled the publish, the answer is already taken.
      assert.equal(answers.length, answered + 1, `batch ${seq}: its answer came with its PUBACK`);
      assert.equal(answers.at(-1), batch.batch_id);
      assert.equal(chunks.length, 1, `batch ${seq}: PUBACK and answer in one read`);
      assert.equal(chunks[0]![0]! >> 4, 4, 'the PUBACK first (it was written first)');
    }
  });
});
