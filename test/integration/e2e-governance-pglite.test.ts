import { defineGovernanceEndToEnd } from '../support/governance-e2e-suite.js';

// Schema governance end to end with real processes on pglite (the suite is in test/support/governance-e2e-suite.ts).
await defineGovernanceEndToEnd('pglite');
