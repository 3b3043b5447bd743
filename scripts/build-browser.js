#!/usr/bin/env node
// Bundles `syncline/client` for browsers into one folder an app can serve as is
// or hand to its bundler: client.js (the "browser" export of syncline/client,
// dependencies included), sqlite-worker.js (the dedicated Worker holding the
// OPFS database) and sqlite3.wasm, which the worker loads from beside itself.
// `node scripts/build-browser.js [outdir]` (default dist/browser).
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const out = resolve(process.argv[2] ?? join(root, 'dist', 'browser'));
const started = Date.now();
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { client: join(root, 'src', 'entries', 'browser.ts'), 'sqlite-worker': join(root, 'src', 'device', 'driver', 'sqlite-worker.ts') },
  outdir: out,
  bundle: true,
  platform: 'browser',
  format: 'esm',
  // Modules loaded on demand (mqtt, only for MQTT wake-ups) become chunks fetched when used, not part of client.js.
  splitting: true,
  // Chunks sit beside client.js: SQLite's chunk (for databases opened inside a worker) finds sqlite3.wasm next to itself.
  chunkNames: '[name]-[hash]',
  target: ['chrome110', 'firefox115', 'safari16.4'],
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
  legalComments: 'linked',
});
const wasm = join(dirname(require.resolve('@sqlite.org/sqlite-wasm/package.json')), 'dist', 'sqlite3.wasm');
copyFileSync(wasm, join(out, 'sqlite3.wasm'));
console.error(`build-browser: ${out} (${Date.now() - started} ms)`);
