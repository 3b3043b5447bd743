// Whether dist/ was built from the sources as they are now: scripts/build.js skips its work
// when it is, and scripts/run-tests.js then lets tests run the CLI from dist/ instead of
// through tsx (the same code, without tsx's start-up in every process a test spawns).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const STAMP = join(root, 'dist', '.build-stamp');
/** What dist/ is built from; a build step with other inputs adds them here. */
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'scripts/build.js', 'scripts/build-console.js', 'scripts/build-browser.js', 'scripts/dist-fresh.js'];

function newestInput(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestInput(join(path, name))));
}

export function distUpToDate() {
  return existsSync(STAMP) && statSync(STAMP).mtimeMs > Math.max(...INPUTS.map((input) => newestInput(join(root, input))));
}
