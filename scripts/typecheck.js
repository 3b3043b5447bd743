#!/usr/bin/env node
// Type-checks the project and the console's browser code (its own tsconfig: DOM, JSX) at the same
// time: two single-threaded tsc runs on two cores take as long as the longer one, not the sum.
// `npm test` runs it as one job beside the test files (scripts/run-tests.js --typecheck). Each
// one's output is printed whole.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const PROJECTS = ['tsconfig.json', 'src/console/app'];

function check(project) {
  const child = spawn(process.execPath, [tsc, '--noEmit', '-p', project], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ project, code, output })));
}

const results = await Promise.all(PROJECTS.map(check));
for (const { project, code, output } of results) {
  if (output) process.stdout.write(output);
  if (code !== 0) console.error(`typecheck: tsc -p ${project} failed`);
}
process.exit(results.every((r) => r.code === 0) ? 0 : 1);
