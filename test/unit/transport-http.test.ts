import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import type { WireRowBatch } from '../../src/protocol/batch.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { wireBatch } from '../support/batches.js';
import { transportRejection } from '../support/transport-errors.js';

interface Call {
  url: string;
  init: RequestInit;
}

/** A `fetch` that records the request and answers with the given response (the transport takes fetch as a parameter). */
function fetchAnswering(answer: () => Response | Promise<Response>, calls: Call[] = []): typeof fetch {
  return (async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    return answer();
  }) as typeof fetch;
}

function batchOf(rows: number, text = 'x'): WireRowBatch {
  return wireBatch({ rows: Array.from({ length: rows }, (_, i) => ({ seq: i + 1, op: 'insert' as const, pk: [i + 1], row: [i + 1, text] })) });
}

const ackFor = (batch: WireRowBatch) => new Response(JSON.stringify({ batch_id: batch.batch_id, status: 'accepted', lineage_id: 'l', last_seq: batch.last_seq, rows_applied: 1, rows_skipped: 0 }), { status: 200 });

/** Encodes and sends, as the publisher does. */
async function send(transport: HttpTransport, batch: WireRowBatch) {
  return transport.sendRowBatch(await transport.encodeRowBatch(batch));
}


describe('HttpTransport', () => {
  test('posts JSON with the bearer token to the row-batch route, keeping a path prefix', async () => {
    const calls: Call[] = [];
    const batch = batchOf(1);
    const transport = new HttpTransport({ serverUrl: 'https://sync.example.com/edge/', token: 'secret', fetch: fetchAnswering(() => ackFor(batch), calls) });
    const ack = await send(transport, batch);
    assert.equal(ack.batch_id, batch.batch_id);
    assert.equal(calls[0]!.url, 'https://sync.example.com/edge/v1/sync/rows/batch');
    const headers = calls[0]!.init.headers as Record<string, string>;
    assert.equal(headers.authorization, 'Bearer secret');
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers['content-encoding'], undefined, 'small bodies are not compressed');
    assert.deepEqual(JSON.parse(Buffer.from(calls[0]!.init.body as Uint8Array).toString()), batch);
  });

  test('large bodies are gzipped when that makes them smaller', async () => {
    const calls: Call[] = [];
    const batch = batchOf(200, 'compressible text '.repeat(4));
    const transport = new HttpTransport({ serverUrl: 'http://127.0.0.1:1', token: 't', fetch: fetchAnswering(() => ackFor(batch), calls) });
    await send(transport, batch);
    const headers = calls[0]!.init.headers as Record<string, string>;
    assert.equal(headers['content-encoding'], 'gzip');
    assert.deepEqual(JSON.parse(gunzipSync(calls[0]!.init.body as Uint8Array).toString()), batch);
  });

  test('server errors carry status, code and whether a retry can help', async () => {
    const cases: [number, string, boolean][] = [
      [503, 'unavailable', true],
      [500, 'internal', true],
      [429, 'slow_down', true],
      [400, 'invalid_batch', false],
      [401, 'unauthorized', false],
      [409, 'stale_epoch', false],
      [413, 'payload_too_large', false],
    ];
    for (const [status, code, retryable] of cases) {
      const transport = new HttpTransport({ serverUrl: 'http://h', token: 't', fetch: fetchAnswering(() => new Response(JSON.stringify({ error: code, message: `m ${code}`, context: {} }), { status })) });
      const error = await transportRejection(send(transport, batchOf(1)));
      assert.equal(error.status, status);
      assert.equal(error.code, code);
      assert.equal(error.retryable, retryable, `${status} retryable`);
      assert.match(error.message, new RegExp(`m ${code}`));
    }
  });

  test('Retry-After is honoured; a non-JSON error body still gives a message', async () => {
    const transport = new HttpTransport({ serverUrl: 'http://h', token: 't', fetch: fetchAnswering(() => new Response('<html>busy</html>', { status: 503, headers: { 'retry-after': '7' } })) });
    const error = await transportRejection(send(transport, batchOf(1)));
    assert.equal(error.retryAfterMs, 7000);
    assert.equal(error.code, undefined);
    assert.match(error.message, /busy/);
  });

  test('network failures, timeouts and a 2xx without our ack are retryable', async () => {
    const refused = new HttpTransport({ serverUrl: 'http://h', token: 't', fetch: fetchAnswering(() => Promise.reject(new TypeError('fetch failed', { cause: new Error('ECONNREFUSED') }))) });
    const e1 = await transportRejection(send(refused, batchOf(1)));
    assert.ok(e1.retryable);
    assert.match(e1.message, /ECONNREFUSED/);

    const slow = new HttpTransport({
      serverUrl: 'http://h',
      token: 't',
      requestTimeoutMs: 10,
      // Never answers; the pending timer stands in for the open socket that keeps a real fetch alive.
      fetch: ((_url: string, init: RequestInit) =>
        new Promise((_resolve, rejectFetch) => {
          const socket = setTimeout(() => {}, 60_000);
          init.signal!.addEventListener('abort', () => {
            clearTimeout(socket);
            rejectFetch(init.signal!.reason);
          });
        })) as unknown as typeof fetch,
    });
    const e2 = await transportRejection(send(slow, batchOf(1)));
    assert.ok(e2.retryable);
    assert.match(e2.message, /no answer within 10 ms/);

    const portal = new HttpTransport({ serverUrl: 'http://h', token: 't', fetch: fetchAnswering(() => new Response('<html>login</html>', { status: 200 })) });
    assert.ok((await transportRejection(send(portal, batchOf(1)))).retryable);
  });

  test('a bad server URL is a configuration error', () => {
    for (const serverUrl of ['not a url', 'ftp://h']) {
      assert.throws(() => new HttpTransport({ serverUrl, token: 't' }), (error: unknown) => isSynclineError(error) && error.code === 'invalid_config');
    }
  });
});
