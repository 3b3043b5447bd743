import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { revokeDevice } from '../../src/cloud/auth/devices.js';
import { CloudServer } from '../../src/cloud/server.js';
import { deviceRoot, deviceTopic, UPLINK_CHANNELS } from '../../src/protocol/topics.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { clientEvent, connectAsDevice } from '../support/mqtt-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { openTestStore, type TestStore } from '../support/stores.js';

/**
 * What one device can make the embedded broker hold: oversized packets, retained
 * messages, and a session that outlives its credential. Broker-side behaviour, so
 * one store (PGlite) is enough.
 */
const MAX_PACKET = 64 * 1024;

type Device = Awaited<ReturnType<typeof newDevice>>;

describe('embedded MQTT broker under a hostile device', () => {
  let handle: TestStore;
  let server: CloudServer;
  const clients: MqttClient[] = [];

  before(async () => {
    handle = await openTestStore('pglite');
    server = await CloudServer.start({
      store: handle.store,
      httpPort: 0,
      adminToken: 'test-admin-token-0123456789',
      schemaPolicy: 'auto',
      logger: pino({ level: 'silent' }),
      mqtt: { port: 0, maxPacketBytes: MAX_PACKET, revocationCheckMs: 200 },
    });
  });
  after(async () => {
    for (const client of clients) client.end(true);
    await server.stop();
    await handle.close();
  });

  const connectDevice = (device: Device): Promise<MqttClient> => connectAsDevice(server.mqtt!.url, device, clients);
  const uplink = (device: Device, channel = UPLINK_CHANNELS[0]!) => deviceTopic(deviceRoot(device.project_id, device.device_id), channel);

  test('a packet declaring more than the limit disconnects the client as soon as its length is read', async () => {
    const device = await newDevice(handle.store, 'oversized');
    const client = await connectDevice(device);
    const before = server.mqtt!.stats.oversizedPackets;
    const closed = clientEvent(client, 'close');
    // A PUBLISH header declaring 100 MB, followed by a few bytes only: the broker must not wait for (or buffer) the rest.
    let length = 100 * 1024 * 1024;
    const varint: number[] = [];
    do {
      let byte = length % 128;
      length = Math.floor(length / 128);
      if (length > 0) byte |= 0x80;
      varint.push(byte);
    } while (length > 0);
    client.stream.write(Buffer.from([0x30, ...varint, 0x00, 0x01, 0x61]));
    await closed;
    assert.equal(server.mqtt!.stats.oversizedPackets, before + 1);

    // A whole publish just over the limit is refused too; one under it is taken.
    const again = await connectDevice(device);
    const closedAgain = clientEvent(again, 'close');
    again.publish(uplink(device), Buffer.alloc(MAX_PACKET + 1, 0x20), { qos: 0 });
    await closedAgain;
    assert.equal(server.mqtt!.stats.oversizedPackets, before + 2);
    const fine = await connectDevice(device);
    await fine.publishAsync(uplink(device, 'controlAck'), Buffer.alloc(MAX_PACKET / 2, 0x20), { qos: 1 });
    assert.ok(fine.connected);
  });

  test('a retained publish is refused on every device uplink topic and disconnects the client', async () => {
    const device = await newDevice(handle.store, 'retainer');
    for (const channel of UPLINK_CHANNELS) {
      const client = await connectDevice(device);
      const denied = server.mqtt!.stats.deniedPublishes;
      const closed = clientEvent(client, 'close');
      client.publish(uplink(device, channel), Buffer.from('{}'), { qos: 1, retain: true });
      await closed;
      assert.equal(server.mqtt!.stats.deniedPublishes, denied + 1, channel);
    }
  });

  test("a revoked device's session is closed at once and it cannot sign in again", async () => {
    const device = await newDevice(handle.store, 'revoked');
    const client = await connectDevice(device);
    const started = Date.now();
    const closed = clientEvent(client, 'close');
    await revokeDevice(handle.store, device.device_id);
    await closed;
    assert.ok(Date.now() - started < 3_000, `closed after ${Date.now() - started} ms`);
    await eventually('the disconnect is counted', async () => server.mqtt!.stats.revokedDisconnects >= 1, 5_000);
    const retry = mqtt.connect(server.mqtt!.url, { clientId: device.device_id, username: device.device_id, password: device.token, reconnectPeriod: 0 });
    clients.push(retry);
    const [error] = (await clientEvent(retry, 'error')) as [Error & { code?: number }];
    assert.equal(error.code, 4, error.message);
  });
});
