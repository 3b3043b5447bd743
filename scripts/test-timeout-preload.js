// Preloaded into every test file's process by scripts/run-tests.js: `import ... from 'node:test'`
// in the tests resolves to scripts/node-test-with-timeouts.js, which gives every test and hook a
// default limit. (Node 20's --test-timeout limits a whole file, not each test in it.)
import { register } from 'node:module';

register('./test-timeout-hooks.js', import.meta.url);

// In a test file's own process (node --test sets NODE_TEST_CONTEXT there): once every test and hook
// has run, whatever a timed-out test left behind (a server, a timer) must not keep the file alive
// until the file limit. Results are already reported by then; node's --test-force-exit would cut
// off the reporters of node 20.
const GRACE_MS = 5_000;
if (process.env.NODE_TEST_CONTEXT) {
  const { after } = await import('node:test');
  after(() => {
    setTimeout(() => {
      process.stderr.write(`[run-tests] handles still open ${GRACE_MS} ms after the last test; exiting\n`);
      process.exit();
    }, GRACE_MS).unref();
  });
}
