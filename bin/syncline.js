#!/usr/bin/env node
// The CLI runs from the built output in dist/ (`npm ci` and `npm pack` build it through
// `prepare`; `npm run build` rebuilds it after editing src/).
await import('../dist/cli/main.js');
