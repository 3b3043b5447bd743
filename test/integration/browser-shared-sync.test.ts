import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import type { CloudServer } from '../../src/cloud/server.js';
import type { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { buildBrowserBundle, chromiumMissing, launchChromium, servePages, type PageServer } from '../support/browser.js';
import { openSharedDevice, serverRows, sharedTestConfig, startSharedServer, userToken } from '../support/shared-fixtures.js';
import { openTestStore, postgresReachable, type TestStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

// The browser client end to end: a page bundles syncline/client (the real
// dist/browser build), keeps its database in OPFS in real Chromium, signs in
// with a JWT and two-way syncs `todos` with a Node device through a real server.
const TODOS = { name: 'todos', direction: 'both', key: ['id'], conflict: 'server_wins', columns: [{ name: 'id', type: 'TEXT' }, { name: 'title', type: 'TEXT' }, { name: 'done', type: 'INTEGER' }] };
const USER = 'ann';

// The app's own page script: what a developer writes (examples/ carries the same shape).
const APP = `
import { OpfsDriver, SharedSync } from '/client.js';
const plain = (rows) => rows.map((r) => ({ id: r.id, title: r.title, done: Number(r.done) }));
let sync;
window.app = {
  async open(token) {
    const driver = await OpfsDriver.open({ name: 'todos.db' });
    sync = await SharedSync.open({ driver, serverUrl: location.origin, token });
    return sync.source;
  },
  async todos() { return plain(await sync.driver.all('SELECT id, title, done FROM todos ORDER BY id')); },
  async add(id, title) { await sync.driver.run('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)', [id, title]); },
  async rename(id, title) { await sync.driver.run('UPDATE todos SET title = ? WHERE id = ?', [title, id]); },
  async sync() {
    const report = await sync.sync();
    return { hydrated: report.hydrated, pushed: report.push.rows, conflicts: report.push.conflicts, pulled: report.pull.rows };
  },
  async trySync() { try { await sync.sync(); return 'synced'; } catch (error) { return error.name + ': ' + error.message; } },
  pending() { return sync.pending(); },
  async conflicts() { return (await sync.conflicts()).map(({ table, key, policy, winner, local, remote, result }) => ({ table, key, policy, winner, local, remote, result })); },
  async close() { await sync.close(); },
};
document.title = 'ready';
`;
const PAGE = `<!doctype html><meta charset="utf-8"><title>todos</title><script type="module" src="/app.js"></script>`;

describe('browser client two-way sync in Chromium', { skip: chromiumMissing }, () => {
  let handle: TestStore;
  let server: CloudServer;
  let bundle: { path: string; remove(): void };
  let pages: PageServer;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let dir: { path: string; remove(): void };
  let laptop: SharedSync;
  let page: Page;

  before(async () => {
    bundle = buildBrowserBundle();
    handle = await openTestStore(postgresReachable ? 'postgres' : 'pglite');
    server = await startSharedServer(handle.store, sharedTestConfig({ tables: [TODOS] }));
    // The page reaches the server from its own origin (the test server passes API paths through).
    pages = await servePages(bundle.path, { '/': PAGE, '/app.js': APP }, server.url);
    browser = await launchChromium();
    dir = tempDir('browser-shared-');
    laptop = await openSharedDevice(server, dir.path, USER, 'laptop');
  });
  after(async () => {
    await laptop?.close();
    await browser?.close();
    await pages?.close();
    await server?.stop();
    await handle?.close();
    bundle?.remove();
    dir?.remove();
  });

  const app = <T>(call: string, ...args: unknown[]): Promise<T> => page.evaluate(([c, a]) => (globalThis as any).app[c as string](...(a as unknown[])), [call, args] as const) as Promise<T>;
  const laptopTodos = async () => (await laptop.driver.all('SELECT id, title, done FROM todos ORDER BY id')).map((r) => ({ id: r.id, title: r.title, done: Number(r.done) }));
  const serverTodos = async () => (await serverRows(handle.store, 'todos', USER, ['id', 'title', 'done'])).map(([id, title, done]) => ({ id, title, done: Number(done) }));

  async function openPage(): Promise<void> {
    await page.goto(pages.url);
    await page.waitForFunction('document.title === "ready"');
    await app('open', await userToken(USER));
  }

  test('edits on each side converge; an offline edit syncs after reconnect; a conflict is settled by policy and logged', async () => {
    page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await openPage();
    const first = await app<{ hydrated: unknown }>('sync');
    assert.notEqual(first.hydrated, null, 'a new page hydrates once');

    await app('add', 'p1', 'from the page');
    await laptop.driver.run("INSERT INTO todos (id, title, done) VALUES ('n1', 'from the laptop', 0)");
    await app('sync');
    await laptop.sync();
    await app('sync');
    const both = [
      { id: 'n1', title: 'from the laptop', done: 0 },
      { id: 'p1', title: 'from the page', done: 0 },
    ];
    assert.deepEqual(await app('todos'), both);
    assert.deepEqual(await laptopTodos(), both);
    assert.deepEqual(await serverTodos(), both);

    // Offline: the page keeps working on its own database and syncs when the network is back.
    await browser.context.setOffline(true);
    await app('add', 'p2', 'written offline');
    await app('rename', 'n1', 'page title');
    assert.match(await app<string>('trySync'), /TransportError/);
    assert.equal(await app('pending'), 2);
    // Meanwhile the laptop changes the same todo and commits first: server_wins keeps its title.
    await laptop.driver.run("UPDATE todos SET title = 'laptop title' WHERE id = 'n1'");
    await laptop.sync();
    await browser.context.setOffline(false);
    const back = await app<{ conflicts: number }>('sync');
    assert.equal(back.conflicts, 1);
    await laptop.sync();
    const after = [
      { id: 'n1', title: 'laptop title', done: 0 },
      { id: 'p1', title: 'from the page', done: 0 },
      { id: 'p2', title: 'written offline', done: 0 },
    ];
    assert.deepEqual(await app('todos'), after);
    assert.deepEqual(await laptopTodos(), after);
    assert.deepEqual(await serverTodos(), after);
    assert.equal(await app('pending'), 0);
    assert.deepEqual(await app('conflicts'), [
      { table: 'todos', key: ['n1'], policy: 'server_wins', winner: 'remote', local: ['n1', 'page title', 0n], remote: ['n1', 'laptop title', 0n], result: ['n1', 'laptop title', 0n] },
    ]);
    assert.deepEqual(errors, []);
  });

  test('a reload keeps the database and resumes without hydrating again', async () => {
    await page.reload();
    await page.waitForFunction('document.title === "ready"');
    await app('open', await userToken(USER));
    assert.equal((await app<unknown[]>('todos')).length, 3, 'the rows are there before any sync');
    await laptop.driver.run("INSERT INTO todos (id, title, done) VALUES ('n2', 'after the reload', 1)");
    await laptop.sync();
    const report = await app<{ hydrated: unknown; pulled: number }>('sync');
    assert.equal(report.hydrated, null);
    assert.equal(report.pulled, 1);
    assert.deepEqual((await app<{ id: string }[]>('todos')).map((t) => t.id), ['n1', 'n2', 'p1', 'p2']);
    assert.equal((await app<unknown[]>('conflicts')).length, 1, 'the conflict log survived the reload');
    await app('close');
  });

  test("the README's browser example (examples/client-browser.html) lists the user's todos and syncs both ways in the background", async () => {
    // Served as the README says: the page, syncline's dist/browser/ at /syncline/, and the app's own sign-in handing out the JWT.
    const example = await servePages(bundle.path, { '/': readFileSync('examples/client-browser.html', 'utf8') }, server.url, {
      bundleAt: '/syncline/',
      posts: { '/login': async ({ user }: { user: string }) => ({ token: await userToken(user) }) },
    });
    try {
      const tab = await browser.context.newPage();
      await tab.goto(`${example.url}/?user=${USER}`);
      const item = (title: string) => tab.getByRole('listitem').filter({ hasText: title });
      await item('after the reload').waitFor();
      await tab.getByLabel('New todo').fill('added in the example');
      await tab.getByRole('button', { name: 'Add' }).click();
      await item('added in the example').waitFor();
      for (let tries = 0; !(await laptopTodos()).some((t) => t.title === 'added in the example'); tries++) {
        assert.ok(tries < 100, 'the tab pushes its new todo in the background');
        await delay(50);
        await laptop.sync();
      }
      await laptop.driver.run("INSERT INTO todos (id, title, done) VALUES ('n3', 'from the laptop, live', 0)");
      await laptop.sync();
      await item('from the laptop, live').waitFor();
      await tab.close();
    } finally {
      await example.close();
    }
  });
});
