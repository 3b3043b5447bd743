#!/usr/bin/env node
// Bundles the web console (src/console/app, preact + the protocol's zod schemas)
// into dist/console/: app.js, app.css and index.html, everything the server
// serves at /console. No CDN: the page loads only these files.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'src', 'console', 'app');
const out = join(root, 'dist', 'console');
const started = Date.now();
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(source, 'main.tsx')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  tsconfig: join(source, 'tsconfig.json'),
  logLevel: 'warning',
  legalComments: 'linked',
});
copyFileSync(join(source, 'index.html'), join(out, 'index.html'));
copyFileSync(join(source, 'app.css'), join(out, 'app.css'));
console.error(`build-console: dist/console (${Date.now() - started} ms)`);
