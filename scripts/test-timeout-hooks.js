// Module resolve hook: 'node:test' imported by anything but the wrapper itself becomes the wrapper.
const WRAPPER = new URL('./node-test-with-timeouts.js', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'node:test' && context.parentURL !== WRAPPER) {
    return { url: WRAPPER, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
