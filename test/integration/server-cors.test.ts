import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import { Routes } from '../../src/protocol/constants.js';
import { chromiumMissing, launchChromium, servePages, type PageServer } from '../support/browser.js';
import { runSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { openTestStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Browser apps on another origin than the server (`syncline server --cors-origin`): a real
 * Chromium enforces CORS, so the page on a listed origin works and the page on another is
 * kept out, by the browser itself; preflights and headers checked too, and the default (none).
 */

const PAGE = '<!doctype html><title>cross-origin app</title>';

function preflight(url: string, origin: string): Promise<Response> {
  return fetch(url, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
}

describe('cross-origin browser apps (--cors-origin)', { skip: chromiumMissing }, () => {
  let dir: ReturnType<typeof tempDir>;
  let server: ServerProcess;
  let listed: PageServer;
  let other: PageServer;
  before(async () => {
    dir = tempDir('syncline-cors-');
    // Two page servers on their own ports: two origins other than the server's.
    listed = await servePages(dir.path, { '/': PAGE });
    other = await servePages(dir.path, { '/': PAGE });
    // A comma list and a repeated flag, as an operator may give them.
    server = await startServer({ dataDir: join(dir.path, 'cloud'), extraArgs: ['--cors-origin', `https://first.example,${listed.url}`, '--cors-origin', 'https://third.example'] });
  });
  after(async () => {
    await server.stop();
    await listed.close();
    await other.close();
    dir.remove();
  });

  test('a preflight from a listed origin is answered; one from another origin gets no CORS headers', async () => {
    const ok = await preflight(`${server.url}${Routes.devices}`, listed.url);
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), listed.url);
    assert.match(ok.headers.get('vary') ?? '', /Origin/);
    assert.match(ok.headers.get('access-control-allow-methods') ?? '', /\bPOST\b/);
    assert.equal(ok.headers.get('access-control-allow-headers'), 'authorization,content-type');
    assert.ok(Number(ok.headers.get('access-control-max-age')) > 0);
    const third = await fetch(`${server.url}${Routes.health}`, { headers: { origin: 'https://third.example' } });
    assert.equal(third.headers.get('access-control-allow-origin'), 'https://third.example', 'the repeated flag counts too');
    const refused = await preflight(`${server.url}${Routes.devices}`, other.url);
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
  });

  test('in Chromium, a page on a listed origin calls the API (preflighted POST and GET); a page on another origin is kept out', async () => {
    const browser = await launchChromium();
    try {
      const call = async (pageUrl: string) => {
        const page = await browser.context.newPage();
        await page.goto(pageUrl);
        return page.evaluate(
          async ([api, token, devices, health]) => {
            try {
              const created = await fetch(`${api}${devices}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'from-a-page' }) });
              const listedDevices = await fetch(`${api}${devices}`, { headers: { authorization: `Bearer ${token}` } });
              const healthz = await fetch(`${api}${health}`);
              return { created: created.status, names: ((await listedDevices.json()) as { devices: { name: string }[] }).devices.map((d) => d.name), health: healthz.status };
            } catch (error) {
              return { error: String(error) };
            }
          },
          [server.url, server.adminToken, Routes.devices, Routes.health] as const,
        );
      };
      assert.deepEqual(await call(listed.url), { created: 201, names: ['from-a-page'], health: 200 });
      const kept = await call(other.url);
      assert.match(String((kept as { error?: string }).error), /TypeError: Failed to fetch/);
    } finally {
      await browser.close();
    }
  });

  test('an origin that is not one (a path, a trailing slash, no scheme) is refused in one line before the store is opened', async () => {
    for (const bad of ['https://app.example/', 'https://app.example/app', 'app.example']) {
      const data = join(dir.path, 'never');
      const run = await runSyncline(['server', '--http-port', '0', '--data', data, '--cors-origin', bad]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, new RegExp(`^syncline: server: --cors-origin "${bad.replaceAll('.', '\\.')}" is not an origin: .* \\[invalid_config\\]`));
      assert.equal(run.stderr.trimEnd().split('\n').length, 1);
      assert.equal(existsSync(data), false);
    }
  });

  test('without the setting no origin is let in', async () => {
    const store = await openTestStore('pglite');
    const plain = await CloudServer.start({ store: store.store, httpPort: 0, adminToken: 'cors-test-admin-token-0123456789', schemaPolicy: 'auto', logger: pino({ level: 'silent' }) });
    try {
      const answer = await preflight(`${plain.url}${Routes.devices}`, listed.url);
      assert.equal(answer.headers.get('access-control-allow-origin'), null);
      const simple = await fetch(`${plain.url}${Routes.health}`, { headers: { origin: listed.url } });
      assert.equal(simple.headers.get('access-control-allow-origin'), null);
    } finally {
      await plain.stop();
      await store.close();
    }
  });
});
