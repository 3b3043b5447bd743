// Drops scratch PostgreSQL databases left behind by test runs whose process is gone
// (run by scripts/run-tests.js before and after every run; safe while other runs are going).
import { sweepStaleScratchDatabases } from '../test/support/postgres.js';

const dropped = await sweepStaleScratchDatabases();
if (dropped.length > 0) console.log(`dropped ${dropped.length} scratch database(s) left by finished runs: ${dropped.join(', ')}`);
