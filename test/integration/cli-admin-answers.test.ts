import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Routes } from '../../src/protocol/constants.js';
import { runSyncline } from '../support/processes.js';

/**
 * The admin CLI reads every answer with its schema: a server that is not ours,
 * or not of this version, gives one clear line and a non-zero exit, never a
 * stack or a table of undefined. A real node:http server answers the real CLI.
 */

const DEVICE = { device_id: '0190c4c8-0000-7000-8000-000000000001', org_id: 'default', project_id: 'default', name: 'pump-1', created_at: '2026-12-07T10:00:00.000Z', revoked_at: null, last_seen_at: null, last_transport: null };

/** What the fake server answers the device list with, chosen by the test through the admin token. */
const ANSWERS: Record<string, { status: number; type: string; body: string }> = {
  'missing-field': { status: 200, type: 'application/json', body: JSON.stringify({ devices: [{ ...DEVICE, name: undefined }] }) },
  'foreign-error': { status: 500, type: 'application/json', body: JSON.stringify({ err: 'boom', trace: ['a', 'b'] }) },
  'not-json': { status: 200, type: 'text/html', body: '<html><body>Welcome to the captive portal</body></html>' },
  'unknown-code': { status: 409, type: 'application/json', body: JSON.stringify({ error: 'a_newer_code', message: 'the device is busy', context: {} }) },
  'extra-field': { status: 200, type: 'application/json', body: JSON.stringify({ devices: [{ ...DEVICE, firmware: '2.1.0' }], cursor: 'c1' }) },
};

/** One line on stderr in the documented shape, and no stack. */
function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected:\n${stderr}`);
  assert.match(lines[0]!, /^syncline: admin device list: .+\.$/);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

describe('admin CLI against answers that are not what it asked for (real node:http server)', () => {
  let server: Server;
  let url: string;
  const deviceList = (mode: string, json = false) => runSyncline(['admin', 'device', 'list', '--server', url, ...(json ? ['--json'] : [])], { SYNCLINE_ADMIN_TOKEN: mode });

  before(async () => {
    server = createServer((request, response) => {
      const answer = ANSWERS[(request.headers.authorization ?? '').replace(/^Bearer /, '')];
      if (request.url !== Routes.devices || !answer) {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(answer.status, { 'content-type': answer.type }).end(answer.body);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  test('a 200 without a field the answer requires: the field named, and the hint that the server is another version', async () => {
    const result = await deviceList('missing-field');
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, '');
    assertOneLineError(result.stderr, /answered GET \/v1\/admin\/devices with 200 and an unexpected body: devices\.0\.name: .+; is it a syncline server of the same version\? \[transport_failed\]/);
  });

  test('a 500 whose body is not a Syncline error: the status and the start of the body, code internal', async () => {
    const result = await deviceList('foreign-error');
    assert.equal(result.code, 1, result.stderr);
    assertOneLineError(result.stderr, /GET \/v1\/admin\/devices answered 500 Internal Server Error: \{"err":"boom","trace":\["a","b"\]\} \[internal\]/);
  });

  test('a 200 that is not JSON (a captive portal): said so', async () => {
    const result = await deviceList('not-json');
    assert.equal(result.code, 1, result.stderr);
    assertOneLineError(result.stderr, /answered 200 with something other than JSON; is it a syncline server\? \[transport_failed\]/);
  });

  test('a Syncline error with a code this CLI does not know keeps its message and names the code', async () => {
    const result = await deviceList('unknown-code');
    assert.equal(result.code, 1, result.stderr);
    assertOneLineError(result.stderr, /the device is busy \(a_newer_code\) \[internal\]/);
  });

  test('fields the schema does not name (a newer server) reach --json and the table as the server sent them', async () => {
    const json = await deviceList('extra-field', true);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { items: [{ ...DEVICE, firmware: '2.1.0' }], next: null });
    const table = await deviceList('extra-field');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /pump-1/);
  });
});
