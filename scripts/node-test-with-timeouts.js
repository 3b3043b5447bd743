// node:test with a default per-test and per-hook timeout (SYNCLINE_TEST_TIMEOUT_MS, default 180 s).
// A test or hook that names its own `timeout` keeps it. Everything else is node:test unchanged.
import * as nodeTest from 'node:test';

export * from 'node:test';

const DEFAULT_MS = Number(process.env.SYNCLINE_TEST_TIMEOUT_MS ?? 180_000);

/** test(name?, options?, fn?) with `timeout` defaulted in the options. */
function withDefault(args) {
  const out = [...args];
  const optionsAt = out.findIndex((arg) => typeof arg === 'object' && arg !== null);
  if (optionsAt >= 0) out[optionsAt] = { timeout: DEFAULT_MS, ...out[optionsAt] };
  else {
    const fnAt = out.findIndex((arg) => typeof arg === 'function');
    out.splice(fnAt >= 0 ? fnAt : out.length, 0, { timeout: DEFAULT_MS });
  }
  return out;
}

function wrapTest(original) {
  const wrapped = (...args) => original(...withDefault(args));
  for (const variant of ['skip', 'todo', 'only']) {
    if (typeof original[variant] === 'function') wrapped[variant] = (...args) => original[variant](...withDefault(args));
  }
  return wrapped;
}

/** Hooks take (fn, options). */
const wrapHook = (original) => (fn, options) => original(fn, { timeout: DEFAULT_MS, ...options });

export const test = wrapTest(nodeTest.test);
export const it = wrapTest(nodeTest.it);
export const before = wrapHook(nodeTest.before);
export const after = wrapHook(nodeTest.after);
export const beforeEach = wrapHook(nodeTest.beforeEach);
export const afterEach = wrapHook(nodeTest.afterEach);
export default test;
