import { defineReplicationEndToEnd } from '../support/replication-e2e-suite.js';

// The whole replication path with real processes on pglite (the suite is in test/support/replication-e2e-suite.ts).
await defineReplicationEndToEnd('pglite');
