import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build } from 'esbuild';
import { copyExample, linkDevPackage, packAndInstall, REPO, type InstalledPackage } from '../support/installed-package.js';
import { seedDataDir } from '../support/pglite-template.js';
import { finished, listeningUrl, type RunResult } from '../support/processes.js';
import { tempDir } from '../support/temp.js';

/** Runs plain `node` (no tsx, no loader) in the consumer project. */
function node(app: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return finished(spawn(process.execPath, args, { cwd: app, env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }), 60_000);
}

// The whole suite (npm pack and install, a consumer tsc, real processes): 79-99 s on a machine at load 25-35.
describe('the npm package, installed from its tarball', { timeout: 300_000 }, () => {
  let dir: ReturnType<typeof tempDir>;
  let pkg: InstalledPackage;
  const children: ChildProcess[] = [];
  before(() => {
    dir = tempDir('syncline-package-');
    pkg = packAndInstall(dir.path);
  });
  after(() => {
    for (const child of children) child.kill('SIGKILL');
    dir.remove();
  });

  test('ships built output, the bin, the license and the readme, nothing else', () => {
    const tops = new Set(pkg.files.map((f) => f.split('/')[0]));
    assert.deepEqual([...tops].sort(), ['LICENSE', 'README.md', 'bin', 'dist', 'package.json']);
    assert.equal(pkg.files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).length, 0);
    for (const entry of ['client', 'server', 'protocol']) {
      for (const ext of ['.js', '.d.ts', '.js.map']) assert.ok(pkg.files.includes(`dist/entries/${entry}${ext}`), `dist/entries/${entry}${ext}`);
    }
    assert.equal('tsx' in pkg.dependencies, false, 'tsx is a dev dependency');
    assert.equal(existsSync(join(pkg.app, 'node_modules', 'tsx')), false);
  });

  test('every entry point imports under plain node', async () => {
    const script = `
      const client = await import('syncline/client');
      const server = await import('syncline/server');
      const protocol = await import('syncline/protocol');
      const root = await import('syncline');
      console.log(JSON.stringify({
        client: [typeof client.Agent, typeof client.SharedSync, typeof client.changes, typeof client.HttpTransport, typeof client.MqttTransport],
        server: [typeof server.CloudServer, typeof server.synclinePlugin, typeof server.openStore, typeof server.parseSharedConfig],
        protocol: [typeof protocol.parseRowBatch, typeof protocol.encodeValue, typeof protocol.Routes],
        root: root.SharedSync === client.SharedSync,
      }));`;
    const result = await node(pkg.app, ['--input-type=module', '-e', script]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      client: ['function', 'function', 'function', 'function', 'function'],
      server: ['function', 'function', 'function', 'function'],
      protocol: ['function', 'function', 'object'],
      root: true,
    });
  });

  test('a consumer file type-checks against the published declarations', async () => {
    linkDevPackage(pkg.app, '@types/node');
    writeFileSync(
      join(pkg.app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, types: ['node'], skipLibCheck: true }, files: ['consumer.ts'] }),
    );
    writeFileSync(
      join(pkg.app, 'consumer.ts'),
      `import { Agent, HttpTransport, SharedSync, changes, type ChangeEvent, type ConflictRecord } from 'syncline/client';
import { CloudServer, openStore, synclinePlugin, type SynclinePluginOptions, type SharedPrincipal } from 'syncline/server';
import { encodeValue, type WireRowBatch } from 'syncline/protocol';
import { OpfsDriver, SharedSync as BrowserSharedSync } from 'syncline/client/browser';
export const agent = new Agent({ dbPath: 'app.db', transport: new HttpTransport({ serverUrl: 'http://127.0.0.1:8080', token: 't' }) });
export const stream = changes({ db: 'app.db' });
export async function sync(): Promise<ConflictRecord[]> {
  const s = await SharedSync.open({ path: 'a.db', serverUrl: 'http://x', token: () => 'jwt' });
  return s.conflicts();
}
const who: SharedPrincipal = { user: 'u', source: 'd' };
export const options: Omit<SynclinePluginOptions, 'store'> = { adminToken: 'x'.repeat(16), authenticate: async () => who };
export const parts = [CloudServer.start, openStore, synclinePlugin, encodeValue(1n)] as const;
export type Seen = ChangeEvent['op'] | WireRowBatch['source_table'];
// skipLibCheck (what apps use) would quietly turn a type dependency that does not resolve into \`any\`: this line catches it.
export function typedDb(sync: SharedSync): void {
  // @ts-expect-error: prepare takes SQL text
  sync.db.prepare(42);
}
// @ts-expect-error: the plugin needs a store
export const missing: SynclinePluginOptions = { adminToken: 'x'.repeat(16) };
// The browser build's declarations, for TypeScript without the "browser" condition.
export async function inBrowser(token: string): Promise<number> {
  const driver = await OpfsDriver.open({ name: 'todos.db' });
  const browserSync = await BrowserSharedSync.open({ driver, serverUrl: 'https://app.example', token });
  return browserSync.pending();
}
`,
    );
    const result = await node(pkg.app, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', '.']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
  });

  test("a browser app's bundler gets the browser build of syncline/client, with its worker and wasm beside it", async () => {
    for (const file of ['client.js', 'sqlite-worker.js', 'sqlite3.wasm']) assert.ok(pkg.files.includes(`dist/browser/${file}`), `dist/browser/${file}`);
    const result = await build({
      stdin: { contents: "import { OpfsDriver, SharedSync } from 'syncline/client'; export const parts = [OpfsDriver.open, SharedSync.open];", resolveDir: pkg.app, loader: 'js' },
      absWorkingDir: pkg.app,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      splitting: true,
      outdir: join(dir.path, 'app-bundle'),
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.includes('node_modules/syncline/dist/browser/client.js'), inputs.join(', '));
    assert.equal(inputs.filter((input) => !input.startsWith('node_modules/syncline/dist/browser/') && input !== '<stdin>').length, 0, inputs.join(', '));
  });

  test('the CLI runs from node_modules/.bin', async () => {
    const bin = join(pkg.app, 'node_modules', '.bin', 'syncline');
    for (const command of ['', 'server', 'agent', 'dev', 'admin', 'watch']) {
      const result = await finished(spawn(bin, [...(command ? [command] : []), '--help'], { cwd: pkg.app, stdio: ['ignore', 'pipe', 'pipe'] }));
      assert.equal(result.code, 0, `${command} --help: ${result.stderr}`);
      assert.match(result.stdout, /usage: syncline/);
    }
  });

  test('Syncline mounted in a user Fastify app with its own sign-in syncs devices (examples/embedded-server.mjs, examples/client-node.mjs)', async () => {
    copyExample(pkg.app, 'embedded-server.mjs');
    copyExample(pkg.app, 'client-node.mjs');
    const adminToken = 'package-test-admin-token-0123456789';
    // A copy of the migrated template, as the CLI's server processes in other tests start on: the
    // example then opens a database (and runs its migrations on it) instead of running initdb.
    await seedDataDir(join(dir.path, 'pglite'));
    const server = spawn(process.execPath, ['embedded-server.mjs'], {
      cwd: pkg.app,
      env: { ...process.env, PORT: '0', DATA_DIR: join(dir.path, 'pglite'), SYNCLINE_ADMIN_TOKEN: adminToken },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(server);
    const output = { stdout: '', stderr: '' };
    try {
      const url = (await listeningUrl(server, output)).replace('[::1]', '127.0.0.1');
      const phone = await node(pkg.app, ['client-node.mjs', url, 'alice', join(dir.path, 'phone.db'), 'buy milk']);
      assert.equal(phone.code, 0, phone.stderr);
      assert.deepEqual(JSON.parse(phone.stdout), ['buy milk']);
      const laptop = await node(pkg.app, ['client-node.mjs', url, 'alice', join(dir.path, 'laptop.db')]);
      assert.equal(laptop.code, 0, laptop.stderr);
      assert.deepEqual(JSON.parse(laptop.stdout), ['buy milk']);
      // Another user of the same app sees none of alice's rows; an unknown caller is refused by the app's hook.
      const bob = await node(pkg.app, ['client-node.mjs', url, 'bob', join(dir.path, 'bob.db')]);
      assert.deepEqual(JSON.parse(bob.stdout), []);
      const refused = await fetch(`${url}/v1/shared/config`, { headers: { authorization: 'Bearer nope', 'x-syncline-source': 'x' } });
      assert.equal(refused.status, 401);
      assert.equal(((await refused.json()) as { error: string }).error, 'unauthorized');

      // Way 1 of the README against the same app: an unmodified app's file, shipped by the CLI agent from node_modules/.bin.
      const cli = (args: string[]) => finished(spawn(join(pkg.app, 'node_modules', '.bin', 'syncline'), args, { cwd: pkg.app, env: { ...process.env, SYNCLINE_ADMIN_TOKEN: adminToken }, stdio: ['ignore', 'pipe', 'pipe'] }));
      const appDb = join(dir.path, 'shop.db');
      const writer = await node(pkg.app, ['--input-type=module', '-e', `import Database from 'better-sqlite3'; const db = new Database(${JSON.stringify(appDb)}); db.exec("CREATE TABLE sales (id INTEGER PRIMARY KEY, item TEXT); INSERT INTO sales (item) VALUES ('tea'), ('cake')"); db.close();`]);
      assert.equal(writer.code, 0, writer.stderr);
      const created = await cli(['admin', 'device', 'create', '--name', 'shop-7', '--json', '--server', url]);
      assert.equal(created.code, 0, created.stderr);
      const { token } = JSON.parse(created.stdout) as { token: string };
      const agent = await cli(['agent', '--db', appDb, '--server', url, '--token', token, '--once']);
      assert.equal(agent.code, 0, agent.stderr);
      const lineages = await cli(['admin', 'lineages', '--json', '--server', url]);
      assert.equal(lineages.code, 0, lineages.stderr);
      const items = (JSON.parse(lineages.stdout) as { items: { source_table: string }[] }).items;
      assert.deepEqual(items.map((l) => l.source_table), ['sales']);
    } finally {
      server.kill('SIGTERM');
      await finished(server);
    }
  });
});
