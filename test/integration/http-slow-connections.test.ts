import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApp } from '../../src/cloud/http/build-app.js';
import { ActivityRecorder } from '../../src/cloud/metrics/activity-recorder.js';
import { httpLimits, type HttpLimits } from '../../src/cloud/http/connection-limits.js';
import { Routes } from '../../src/protocol/constants.js';
import { openTestStore, type TestStore } from '../support/stores.js';

/**
 * Slow and greedy clients against the real HTTP front door, over raw sockets that
 * trickle bytes: every socket ends within a bounded time, and the connection cap
 * answers with a readable refusal.
 */
const ADMIN_TOKEN = 'test-admin-token-0123456789';

interface RawClient {
  socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** Milliseconds from connect until the server closed the socket. */
  closed: Promise<number>;
}

async function rawClient(port: number): Promise<RawClient> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
  socket.on('error', () => {});
  const started = Date.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, received: () => text, closed };
}

/** Writes `text` a byte at a time every `everyMs` until the socket closes. */
function trickle(socket: Socket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || socket.writableEnded || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]!);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);

describe('HTTP front door under slow and greedy clients', () => {
  let handle: TestStore;
  const apps: FastifyInstance[] = [];

  async function serve(limits: Partial<HttpLimits>): Promise<number> {
    const app = await buildApp({ store: handle.store, activity: new ActivityRecorder({ db: handle.store, logger: pino({ level: 'silent' }) }), adminToken: ADMIN_TOKEN, bodyLimit: 64 * 1024, logger: pino({ level: 'silent' }), httpLimits: httpLimits(limits) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    apps.push(app);
    return (app.server.address() as AddressInfo).port;
  }

  before(async () => {
    handle = await openTestStore('pglite');
  });
  after(async () => {
    for (const app of apps) await app.close();
    await handle.close();
  });

  test('a body trickled a byte at a time gets 408 and its socket closed at the request timeout', async () => {
    const port = await serve({ requestTimeoutMs: 1_500, headersTimeoutMs: 1_000, idleTimeoutMs: 30_000 });
    const client = await rawClient(port);
    client.socket.write(`POST ${Routes.devices} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`);
    trickle(client.socket, '{"name":"' + 'x'.repeat(980), 100);
    const closedAfter = await client.closed;
    assert.equal(statusOf(client.received()), 408, client.received());
    assert.ok(closedAfter < 5_000, `closed after ${closedAfter} ms`);
  });

  test('headers trickled a byte at a time: the socket is closed at the headers timeout', async () => {
    const port = await serve({ requestTimeoutMs: 10_000, headersTimeoutMs: 1_000, idleTimeoutMs: 30_000 });
    const client = await rawClient(port);
    trickle(client.socket, `GET ${Routes.health} HTTP/1.1\r\nHost: x\r\nX-Slow: ${'y'.repeat(500)}\r\n\r\n`, 100);
    const closedAfter = await client.closed;
    assert.equal(statusOf(client.received()), 408, client.received());
    assert.ok(closedAfter < 4_000, `closed after ${closedAfter} ms`);
  });

  test('a 401 sent before the body was read closes the socket instead of waiting for the rest of the body', async () => {
    const port = await serve({ requestTimeoutMs: 60_000, headersTimeoutMs: 10_000, idleTimeoutMs: 60_000 });
    const client = await rawClient(port);
    client.socket.write(`POST ${Routes.devices} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"na`);
    const closedAfter = await client.closed;
    const text = client.received();
    assert.equal(statusOf(text), 401, text);
    assert.match(text, /connection: close/i);
    assert.match(text, /"error":"unauthorized"/);
    assert.ok(closedAfter < 3_000, `closed after ${closedAfter} ms`);
  });

  test('a socket idle after its answer is closed at the idle timeout', async () => {
    const port = await serve({ requestTimeoutMs: 10_000, headersTimeoutMs: 1_000, idleTimeoutMs: 1_000 });
    const client = await rawClient(port);
    client.socket.write(`GET ${Routes.health} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const closedAfter = await client.closed;
    assert.equal(statusOf(client.received()), 200, client.received());
    assert.ok(closedAfter >= 900 && closedAfter < 4_000, `closed after ${closedAfter} ms`);
  });

  test('a request the server is slow to answer keeps its socket past the idle timeout and gets its answer', async () => {
    const port = await serve({ requestTimeoutMs: 10_000, headersTimeoutMs: 1_000, idleTimeoutMs: 500 });
    const client = await rawClient(port);
    let releaseStore!: () => void;
    let storeHeld!: () => void;
    const held = new Promise<void>((resolve) => (storeHeld = resolve));
    // PGlite has one connection: while this transaction is open, the request's statements wait behind it.
    const holding = handle.store.transaction(async () => {
      storeHeld();
      await new Promise<void>((resolve) => (releaseStore = resolve));
    });
    await held;
    const body = JSON.stringify({ name: 'slow-answer' });
    client.socket.write(`POST ${Routes.devices} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(client.socket.destroyed, false, 'socket closed while its request waited for the store');
    releaseStore();
    await holding;
    const closedAfter = await client.closed;
    assert.equal(statusOf(client.received()), 201, client.received());
    // Answered, the socket is idle again and closed at the idle timeout.
    assert.ok(closedAfter < 6_000, `closed after ${closedAfter} ms`);
  });

  test('one connection over the cap gets a readable 503 too_many_connections; a slot freed is usable again', async () => {
    const port = await serve({ maxConnections: 3, requestTimeoutMs: 30_000, headersTimeoutMs: 30_000, idleTimeoutMs: 30_000 });
    const held = await Promise.all([rawClient(port), rawClient(port), rawClient(port)]);
    const over = await rawClient(port);
    over.socket.write(`GET ${Routes.health} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await over.closed;
    const text = over.received();
    assert.equal(statusOf(text), 503, text);
    assert.match(text, /"error":"too_many_connections"/);
    assert.match(text, /connection: close/i);

    held[0]!.socket.destroy();
    await held[0]!.closed;
    // The server sees the close a moment after the client: retry until the slot is free.
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 200; attempt++) {
      const response = await fetch(`http://127.0.0.1:${port}${Routes.health}`, { headers: { connection: 'close' } });
      status = response.status;
      await response.arrayBuffer();
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(status, 200);
    for (const client of held.slice(1)) client.socket.destroy();
  });

  test('timeouts and the cap are validated', () => {
    assert.throws(() => httpLimits({ maxConnections: 0 }), /maxConnections/);
    assert.throws(() => httpLimits({ requestTimeoutMs: 1_000, headersTimeoutMs: 2_000 }), /headers timeout/);
  });
});
