#!/usr/bin/env node
// Builds dist/ (ESM, .d.ts, source maps) from src/. `npm ci` runs it through
// `prepare`, and so does `npm pack`, so the bin and the package's entry points
// always run from built output, never through a TypeScript loader.
// It skips the work when dist/ is newer than every input, and tsc is incremental
// (dist/.tsbuildinfo); `--force` starts from an empty dist/. It does not type-check
// (`npm run typecheck` does, and `npm test` starts with it).
// Steps run in order; a later step (e.g. bundling a web page with esbuild) is one
// more entry in STEPS, and its inputs one more entry in INPUTS (scripts/dist-fresh.js).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distUpToDate, STAMP } from './dist-fresh.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

function run(what, args) {
  const started = Date.now();
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`build: ${what} failed`);
    process.exit(result.status ?? 1);
  }
  console.error(`build: ${what} (${Date.now() - started} ms)`);
}

// Outputs of other steps than tsc, which pruning leaves alone.
const BUNDLES = new Set([join(root, 'dist', 'console'), join(root, 'dist', 'browser')]);

/** Incremental builds leave the outputs of deleted sources behind: drop every dist file whose source is gone. */
function pruneOrphans(dir = join(root, 'dist')) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (BUNDLES.has(path)) continue;
    if (statSync(path).isDirectory()) {
      pruneOrphans(path);
      continue;
    }
    const source = /^(.*)\.(js|js\.map|d\.ts)$/.exec(path.slice(join(root, 'dist').length + 1));
    if (source && !existsSync(join(root, 'src', `${source[1]}.ts`))) rmSync(path);
  }
}

const STEPS = [
  { what: 'clean dist/', run: () => process.argv.includes('--force') && rmSync(join(root, 'dist'), { recursive: true, force: true }) },
  // Emit only: type checking is `npm run typecheck`'s job (npm test runs it over src/ and the tests
  // alike), and checking src/ here too doubled it in every CI run, where `npm ci` builds through
  // `prepare` (about half of tsc's time here). The output is the same JavaScript and declarations.
  { what: 'tsc', run: () => run('tsc -p tsconfig.build.json --noCheck', [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--noCheck']) },
  { what: 'prune', run: () => pruneOrphans() },
  { what: 'console', run: () => run('web console (scripts/build-console.js)', [join(root, 'scripts', 'build-console.js')]) },
  { what: 'browser', run: () => run('browser client (scripts/build-browser.js)', [join(root, 'scripts', 'build-browser.js')]) },
];

if (distUpToDate() && !process.argv.includes('--force')) {
  console.error('build: dist/ is up to date');
} else {
  for (const step of STEPS) step.run();
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
}
