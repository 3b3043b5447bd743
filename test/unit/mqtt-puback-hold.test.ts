import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { Client } from 'aedes';
import { PubackHold } from '../../src/cloud/mqtt/puback-hold.js';

/** PubackHold on a real socket pair: what it holds reaches the peer only on release or sweep. */
let server: ReturnType<typeof createServer>;
let serverSide: Socket;
let peer: Socket;
const received: Buffer[] = [];

before(async () => {
  server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  peer = connect((server.address() as AddressInfo).port, '127.0.0.1');
  peer.on('data', (chunk: Buffer) => received.push(chunk));
  [serverSide] = (await accepted) as [Socket];
});
after(() => {
  peer.destroy();
  serverSide.destroy();
  server.close();
});

/** The socket as aedes's client holds it (the hold only uses `conn`); one client object, as aedes keeps one per connection. */
let theClient: Client | undefined;
const client = (): Client => (theClient ??= { conn: serverSide } as unknown as Client);

async function receivedSoon(): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, 100));
  return Buffer.concat(received.splice(0)).toString();
}

test('a held write leaves only when the delivered message releases it', async () => {
  const hold = new PubackHold(60_000);
  const payload = Buffer.from('batch');
  hold.hold(client(), payload);
  serverSide.write('puback;');
  assert.equal(await receivedSoon(), '');
  assert.equal(hold.take(Buffer.from('batch')), undefined, 'another message (another payload buffer) holds nothing');
  const release = hold.take(payload)!;
  assert.equal(hold.take(payload), undefined, 'taken once');
  serverSide.write('answer;');
  assert.equal(await receivedSoon(), '');
  release();
  release();
  assert.equal(await receivedSoon(), 'puback;answer;');
});

test('one hold per client at a time; a stale release does not uncork a newer hold', async () => {
  const hold = new PubackHold(60_000);
  const first = Buffer.from('1');
  const second = Buffer.from('2');
  hold.hold(client(), first);
  hold.hold(client(), second);
  assert.equal(hold.take(second), undefined, 'the second arrived while the first was held');
  const releaseFirst = hold.take(first)!;
  releaseFirst();
  const third = Buffer.from('3');
  hold.hold(client(), third);
  serverSide.write('x;');
  releaseFirst();
  assert.equal(await receivedSoon(), '', 'the old release is spent');
  hold.take(third)!();
  assert.equal(await receivedSoon(), 'x;');
});

test('a hold nobody releases is swept after its limit; a gone client is forgotten', async () => {
  const hold = new PubackHold(1_000);
  hold.hold(client(), Buffer.from('never delivered'));
  serverSide.write('late;');
  hold.sweep(Date.now() + 500);
  assert.equal(await receivedSoon(), '', 'not yet');
  hold.sweep(Date.now() + 1_000);
  assert.equal(await receivedSoon(), 'late;');
  hold.hold(client(), Buffer.from('again'));
  serverSide.write('gone;');
  hold.forget(client());
  assert.equal(await receivedSoon(), 'gone;');
});
