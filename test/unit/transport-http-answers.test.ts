import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { uuidv7 } from 'uuidv7';
import type { WireRowBatch } from '../../src/protocol/batch.js';
import { Routes } from '../../src/protocol/constants.js';
import type { WireTelemetryBatch } from '../../src/protocol/telemetry-batch.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { wireBatch } from '../support/batches.js';
import { readingBatch } from '../support/telemetry-batches.js';
import { transportRejection } from '../support/transport-errors.js';

/**
 * What the HTTP transport makes of answers that are not the cloud's: a real
 * local HTTP server answers each request as the test scripts it (a captive
 * portal, a proxy, a confused or older server), and every answer that is not
 * the ack of the batch sent must come back as a retryable TransportError, never
 * as an ack.
 */

interface Scripted {
  status: number;
  /** Sent as is; an object is sent as JSON. */
  body: string | object;
  headers?: Record<string, string>;
}

interface Request {
  method: string;
  url: string;
  body: string;
}

type Script = (request: Request) => Scripted;

const batch = (): WireRowBatch => wireBatch({ rows: [{ seq: 1, op: 'insert', pk: [1], row: [1, 'x'] }] });

const ackOf = (b: WireRowBatch, extra: Record<string, unknown> = {}) => ({ batch_id: b.batch_id, status: 'accepted', lineage_id: uuidv7(), last_seq: b.last_seq, rows_applied: 1, rows_skipped: 0, ...extra });

const control = (extra: Record<string, unknown> = {}) => ({
  type: 'pause_lineage',
  reason: 'volume_backpressure',
  control_id: uuidv7(),
  lineage_id: uuidv7(),
  source_table: 'items',
  journal_epoch: null,
  server_watermark: 0,
  issued_at: new Date().toISOString(),
  ...extra,
});


describe('HttpTransport against answers that are not the cloud\'s', () => {
  let server: Server;
  let url: string;
  let script: Script = () => ({ status: 500, body: 'no script' });
  const requests: Request[] = [];

  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const request = { method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') };
        requests.push(request);
        const answer = script(request);
        const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
        res.writeHead(answer.status, { 'content-type': typeof answer.body === 'string' ? 'text/html' : 'application/json', ...answer.headers }).end(text);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const transport = () => new HttpTransport({ serverUrl: url, token: 't', requestTimeoutMs: 10_000 });
  const send = async (b: WireRowBatch) => {
    const http = transport();
    return http.sendRowBatch(await http.encodeRowBatch(b));
  };

  test('the ack of the batch sent is taken', async () => {
    script = ({ body }) => ({ status: 200, body: ackOf(JSON.parse(body) as WireRowBatch, { in_order: true }) });
    const b = batch();
    const ack = await send(b);
    assert.equal(ack.batch_id, b.batch_id);
    assert.equal(ack.last_seq, 1);
    assert.equal(ack.in_order, true);
  });

  test('a 2xx that is not an ack for this batch is a retryable TransportError naming what is wrong', async () => {
    const cases: { name: string; answer: (b: WireRowBatch) => Scripted; message: RegExp }[] = [
      { name: 'an ack for another batch', answer: (b) => ({ status: 200, body: ackOf(b, { batch_id: uuidv7() }) }), message: /it acks batch [0-9a-f-]{36}$/ },
      { name: 'an unknown status', answer: (b) => ({ status: 200, body: ackOf(b, { status: 'stored' }) }), message: /: status: / },
      { name: 'last_seq as a string', answer: (b) => ({ status: 200, body: ackOf(b, { last_seq: String(b.last_seq) }) }), message: /: last_seq: .*number/ },
      { name: 'no lineage_id', answer: (b) => ({ status: 200, body: ackOf(b, { lineage_id: undefined }) }), message: /: lineage_id: / },
      { name: 'a captive portal\'s page', answer: () => ({ status: 200, body: '<html><body>Sign in to the hotel Wi-Fi</body></html>' }), message: /the body is not JSON/ },
      { name: 'an empty 202', answer: () => ({ status: 202, body: '' }), message: /server answered 202 .*the body is not JSON/ },
      { name: 'JSON that is no object', answer: () => ({ status: 200, body: '[1,2]' }), message: /\(root\): / },
    ];
    for (const c of cases) {
      const b = batch();
      script = () => c.answer(b);
      const error = await transportRejection(send(b));
      assert.equal(error.retryable, true, c.name);
      assert.equal(error.code, undefined, c.name);
      assert.match(error.message, new RegExp(`server answered 20[02] without an ack for batch ${b.batch_id}`), c.name);
      assert.match(error.message, c.message, `${c.name}: ${error.message}`);
    }
  });

  test('the same holds on the telemetry route', async () => {
    const json = JSON.stringify(readingBatch('readings', 1, 2, uuidv7()));
    const b = JSON.parse(json) as WireTelemetryBatch;
    script = () => ({ status: 200, body: { ...ackOf(b as unknown as WireRowBatch), last_seq: 'two' } });
    const error = await transportRejection(transport().sendTelemetryBatch(b, json));
    assert.equal(error.retryable, true);
    assert.match(error.message, new RegExp(`without an ack for batch ${b.batch_id}: last_seq: `));
    assert.equal(requests.at(-1)!.url, Routes.telemetryBatch);
  });

  test('an ack carrying a control the device cannot read is still the ack: the control is left for the control handler', async () => {
    const unknownReason = control({ reason: 'quota_exceeded' });
    script = ({ body }) => ({ status: 200, body: ackOf(JSON.parse(body) as WireRowBatch, { controls: [control(), unknownReason] }) });
    const ack = await send(batch());
    assert.equal(ack.controls?.length, 2);
    assert.deepEqual(ack.controls?.[1], unknownReason);
  });

  test('refusals: our error body gives code and message; one without `error` or not JSON gives the text, and the status decides the retry', async () => {
    const cases: { answer: Scripted; retryable: boolean; code?: string; retryAfterMs?: number; message: RegExp }[] = [
      { answer: { status: 409, body: { error: 'stale_epoch', message: 'journal epoch is older', context: {} } }, retryable: false, code: 'stale_epoch', message: /server answered 409 stale_epoch: journal epoch is older$/ },
      { answer: { status: 400, body: { message: 'body is bad', context: {} } }, retryable: false, message: /server answered 400: \{"message":"body is bad"/ },
      { answer: { status: 503, body: { error: 42, message: 'down' } }, retryable: true, message: /server answered 503: \{"error":42/ },
      { answer: { status: 502, body: '<html>Bad Gateway</html>', headers: { 'retry-after': '3' } }, retryable: true, retryAfterMs: 3000, message: /server answered 502: <html>Bad Gateway/ },
      { answer: { status: 404, body: '' }, retryable: false, message: /server answered 404: Not Found$/ },
    ];
    for (const c of cases) {
      script = () => c.answer;
      const error = await transportRejection(send(batch()));
      assert.equal(error.status, c.answer.status);
      assert.equal(error.retryable, c.retryable, String(c.answer.status));
      assert.equal(error.code, c.code);
      assert.equal(error.retryAfterMs, c.retryAfterMs);
      assert.match(error.message, c.message);
    }
  });

  test('flow control: controls are read with their schema, and an answer that is not the route\'s is a retryable TransportError', async () => {
    const pending = [control(), control({ type: 'resume_lineage', reason: 'backlog_drained' })];
    script = () => ({ status: 200, body: { controls: pending } });
    assert.deepEqual(await transport().fetchControls(), pending);

    const malformed: { body: string | object; message: RegExp }[] = [
      { body: '<html>login</html>', message: /the body is not JSON/ },
      { body: {}, message: /controls: / },
      { body: { controls: [control({ server_watermark: '7' })] }, message: /controls\.0\.server_watermark: / },
    ];
    for (const m of malformed) {
      script = () => ({ status: 200, body: m.body });
      const error = await transportRejection(transport().fetchControls());
      assert.equal(error.retryable, true);
      assert.match(error.message, /GET .*\/v1\/sync\/controls: server answered 200 without its answer: /);
      assert.match(error.message, m.message);
    }

    const ack = { control_id: pending[0]!.control_id, status: 'applied' as const };
    script = ({ body }) => ({ status: 200, body: { control_id: (JSON.parse(body) as { control_id: string }).control_id, recorded: true } });
    await transport().ackControl(ack);
    assert.deepEqual(JSON.parse(requests.at(-1)!.body), ack);
    script = () => ({ status: 200, body: '<html>login</html>' });
    assert.equal((await transportRejection(transport().ackControl(ack))).retryable, true, 'a portal did not record the ack: it is sent again');
    script = () => ({ status: 401, body: { error: 'unauthorized', message: 'unknown device token', context: {} } });
    const refused = await transportRejection(transport().ackControl(ack));
    assert.equal(refused.retryable, false);
    assert.equal(refused.code, 'unauthorized');
    assert.match(refused.message, /POST .*\/v1\/sync\/controls\/ack: server answered 401 unauthorized: unknown device token/);
  });
});
