import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChaos } from '../../bench/chaos/scenario.js';
import { tempDir } from '../support/temp.js';

/**
 * The core of `npm run chaos` at a small size: two edge devices' apps commit the
 * whole time, and two two-way devices of one user edit a shared table (keys of
 * their own and keys both write), while the server is SIGKILLed and restarted,
 * then, in one window, PostgreSQL's backends are terminated in a loop (when
 * PostgreSQL is reachable; PGlite otherwise), the edge devices' disks fill up and
 * one two-way device's clock jumps ahead and then behind (agent SIGKILLs and
 * restarts are in e2e-replication and the full run, which also injects each
 * window fault alone). Nothing may be lost, doubled or wrong, the server may
 * never crash, ingest must resume after every fault, and both two-way devices
 * must end equal to the server. Cheaper than the full run without proving less:
 * all apps in one process, the window faults in one window, the edge agents'
 * backoff capped at 1 s (a restarted server is found at once).
 */
test('chaos, small: every row exact through server, database, disk and clock faults', { timeout: 180_000 }, async (t) => {
  const dir = tempDir('syncline-chaos-test-');
  try {
    const result = await runChaos({
      dir: dir.path,
      rounds: 1,
      calmMs: 200,
      windowMs: 1500,
      writerPauseMs: 25,
      kinds: ['server_sigkill', 'pg_backend_termination', 'device_disk_full', 'clock_jump'],
      windowsTogether: true,
      agentRetryMaxMs: 1000,
    });
    const summary = JSON.stringify({ ...result, tables: undefined });
    t.diagnostic(`${result.duration_s} s: ${JSON.stringify({ recovery_ms: result.recovery_ms, two_way: result.two_way })}`);
    assert.ok(result.operations.changes > 100, `the apps made changes: ${summary}`);
    assert.ok(result.operations.two_way_writes > 50, `the two-way apps wrote: ${summary}`);
    assert.ok(result.operations.disk_full_refusals > 0, `the full disk refused writes: ${summary}`);
    assert.equal(result.faults.clock_jump, 1, summary);
    assert.deepEqual(
      { rows_lost: result.rows_lost, rows_duplicated: result.rows_duplicated, wrong_values: result.wrong_values, changes_lost: result.changes_lost, changes_duplicated: result.changes_duplicated, server_crashes: result.server_crashes, unrecovered: result.unrecovered, two_way_diverged: result.two_way.diverged },
      { rows_lost: 0, rows_duplicated: 0, wrong_values: 0, changes_lost: 0, changes_duplicated: 0, server_crashes: 0, unrecovered: 0, two_way_diverged: 0 },
      summary,
    );
    assert.notEqual(result.two_way.converged_ms, null, `the two-way devices converged: ${summary}`);
    assert.ok(result.two_way.rows > 0, summary);
    assert.ok(result.tables.every((t) => t.source_rows > 0), summary);
  } finally {
    dir.remove();
  }
});
