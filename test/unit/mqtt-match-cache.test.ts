import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { cacheTopicMatches } from '../../src/cloud/mqtt/match-cache.js';

/** A real aedes broker with the match cache, real MQTT clients: every subscription change shows in the next publish. */
let aedes: Aedes;
let server: Server;
let url: string;

before(async () => {
  aedes = await Aedes.createBroker();
  cacheTopicMatches(aedes);
  server = createServer((socket) => aedes.handle(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const publish = (topic: string, text: string) => new Promise<void>((resolve, reject) => aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(text), qos: 1, retain: false, dup: false }, (error) => (error ? reject(error) : resolve())));

/** Messages a client got within a short wait. */
async function received(client: mqtt.MqttClient, run: () => Promise<void>): Promise<string[]> {
  const got: string[] = [];
  const onMessage = (topic: string, payload: Buffer) => got.push(`${topic}=${payload.toString()}`);
  client.on('message', onMessage);
  await run();
  await new Promise((resolve) => setTimeout(resolve, 150));
  client.off('message', onMessage);
  return got;
}

test('deliveries follow subscribes and unsubscribes made after a topic was matched', async () => {
  const client = await mqtt.connectAsync(url, { clientId: 'live', clean: true });
  try {
    assert.deepEqual(await received(client, () => publish('a/b', '1')), [], 'nobody subscribed yet (the empty match is remembered)');
    await client.subscribeAsync('a/+', { qos: 1 });
    assert.deepEqual(await received(client, () => publish('a/b', '2')), ['a/b=2']);
    await client.subscribeAsync('a/b', { qos: 1 });
    assert.deepEqual((await received(client, () => publish('a/b', '3'))).length, 1, 'overlapping subscriptions of one client: one delivery, as without the cache');
    await client.unsubscribeAsync(['a/+', 'a/b']);
    assert.deepEqual(await received(client, () => publish('a/b', '4')), []);
  } finally {
    await client.endAsync();
  }
});

test('a persistent session subscribed after its topic was matched gets what was published while it was away', { timeout: 10_000 }, async () => {
  const first = await mqtt.connectAsync(url, { clientId: 'away', clean: false });
  await publish('dev/1/control', 'before');
  await first.subscribeAsync('dev/1/control', { qos: 1 });
  await first.endAsync();
  await publish('dev/1/control', 'queued');
  const again = mqtt.connect(url, { clientId: 'away', clean: false });
  const [topic, payload] = await new Promise<[string, Buffer]>((resolve) => again.once('message', (t, p) => resolve([t, p])));
  assert.equal(`${topic}=${payload.toString()}`, 'dev/1/control=queued');
  await again.unsubscribeAsync('dev/1/control');
  await again.endAsync();
  await publish('dev/1/control', 'after unsubscribe');
  const third = await mqtt.connectAsync(url, { clientId: 'away', clean: false });
  try {
    assert.deepEqual(await received(third, async () => {}), [], 'nothing queued once unsubscribed');
  } finally {
    await third.endAsync();
  }
});
