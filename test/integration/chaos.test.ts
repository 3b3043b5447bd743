import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChaos } from '../../bench/chaos/scenario.js';
import { tempDir } from '../support/temp.js';

/**
 * The core of `npm run chaos` at a small size: two devices' apps commit the whole
 * time while the server is SIGKILLed and restarted, PostgreSQL's backends are
 * terminated in a loop (when PostgreSQL is reachable; PGlite otherwise) and the
 * devices' disks fill up (agent SIGKILLs are in e2e-replication and the full
 * run). Nothing may be lost, doubled or wrong, the server may never crash, and
 * ingest must resume after every fault.
 */
test('chaos, small: every row exact through server, database and disk faults', { timeout: 180_000 }, async () => {
  const dir = tempDir('syncline-chaos-test-');
  try {
    const result = await runChaos({ dir: dir.path, rounds: 1, calmMs: 200, windowMs: 1000, writerPauseMs: 10, kinds: ['server_sigkill', 'pg_backend_termination', 'device_disk_full'] });
    const summary = JSON.stringify({ ...result, tables: undefined });
    assert.ok(result.operations.changes > 100, `the apps made changes: ${summary}`);
    assert.ok(result.operations.disk_full_refusals > 0, `the full disk refused writes: ${summary}`);
    assert.deepEqual(
      { rows_lost: result.rows_lost, rows_duplicated: result.rows_duplicated, wrong_values: result.wrong_values, changes_lost: result.changes_lost, changes_duplicated: result.changes_duplicated, server_crashes: result.server_crashes, unrecovered: result.unrecovered },
      { rows_lost: 0, rows_duplicated: 0, wrong_values: 0, changes_lost: 0, changes_duplicated: 0, server_crashes: 0, unrecovered: 0 },
      summary,
    );
    assert.ok(result.tables.every((t) => t.source_rows > 0), summary);
  } finally {
    dir.remove();
  }
});
