import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { describe, test } from 'node:test';
import { build, type BuildOptions, type Plugin } from 'esbuild';

// Code that runs in browsers, bundled the way an app's bundler would (dependencies
// included) for platform=browser: a Node built-in anywhere on these paths would
// break the page, so it fails here first. Our own code must not use Buffer either
// (checked without dependencies: mqtt's browser build carries its own Buffer
// polyfill). Minified, so a comment mentioning Buffer is gone while a use of the
// global (never renamed) stays.
const BROWSER_ENTRIES = ['src/entries/browser.ts', 'src/device/driver/sqlite-worker.ts', 'src/entries/protocol.ts', 'src/transport/shared-http-client.ts'];
const NODE_BUILTINS = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));

/** Records every import of a Node built-in with the file that asked for it (esbuild alone says only "could not resolve"). */
function builtinSpy(found: string[]): Plugin {
  return {
    name: 'node-builtins',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (!NODE_BUILTINS.has(args.path)) return undefined;
        found.push(`${args.importer} imports ${args.path}`);
        return { path: args.path, external: true };
      });
    },
  };
}

describe('browser bundle', () => {
  for (const entry of BROWSER_ENTRIES) {
    test(`${entry} bundles for the browser without Node built-ins or Buffer`, async () => {
      const builtins: string[] = [];
      const options: BuildOptions = { entryPoints: [entry], bundle: true, platform: 'browser', format: 'esm', target: 'es2022', minify: true, write: false, logLevel: 'silent' };
      await build({ ...options, plugins: [builtinSpy(builtins)] });
      assert.deepEqual(builtins, []);
      const ours = await build({ ...options, packages: 'external' });
      const code = ours.outputFiles![0]!.text;
      const buffer = /\bBuffer\b/.exec(code);
      assert.equal(buffer, null, `Buffer is used near: ${buffer ? code.slice(Math.max(0, buffer.index - 200), buffer.index + 100) : ''}`);
    });
  }

  test('the check sees a built-in and a Buffer when they are there', async () => {
    const builtins: string[] = [];
    const result = await build({ stdin: { contents: "import { createHash } from 'node:crypto'; export const h = (s) => createHash('sha256').update(s).digest(); export const b = Buffer.from('x');", loader: 'js' }, bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent', plugins: [builtinSpy(builtins)] });
    assert.deepEqual(builtins, ['<stdin> imports node:crypto']);
    assert.match(result.outputFiles[0]!.text, /\bBuffer\b/);
  });
});
