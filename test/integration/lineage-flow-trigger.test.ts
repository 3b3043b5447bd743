import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uuidv7 } from 'uuidv7';
import { newDevice } from '../support/cloud-fixtures.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The lineage flow trigger (migration 0016 narrowed when it fires): the circuit
 * breaker's failure count moves exactly as the trigger's body says — reset when
 * rows reach the mirror, one more for each batch or pause that adds to a
 * materialization failure — and a batch staged behind a review, which moves
 * only rows_received, leaves it alone; a group's one UPDATE of many lineages
 * moves each count as its own row says.
 */
describeEachStore('lineage flow trigger', (ctx) => {
  test('failure count: staged batches leave it, failing batches add, applied rows reset', async () => {
    const device = await newDevice(ctx.store, 'flow-trigger');
    const id = uuidv7();
    await ctx.store.query(
      `INSERT INTO edge_table_lineages (id, project_id, device_id, source_table, key_kind, key_columns, status, pause_cause)
       VALUES ($1, $2, $3, 'readings', 'primary_key', '["id"]', 'paused', 'schema_review')`,
      [id, device.project_id, device.device_id],
    );
    await ctx.store.query('INSERT INTO edge_lineage_flow (lineage_id, consecutive_failures) VALUES ($1, 3)', [id]);
    const failures = async () => Number((await ctx.store.query<{ n: number }>('SELECT consecutive_failures AS n FROM edge_lineage_flow WHERE lineage_id = $1', [id])).rows[0]!.n);
    const update = (set: string) => ctx.store.query(`UPDATE edge_table_lineages SET ${set}, updated_at = now() WHERE id = $1`, [id]);

    await update('rows_received = rows_received + 5');
    assert.equal(await failures(), 3, 'a batch staged behind a review');
    await update(`pause_cause = 'materialization_failed', status_reason = 'mirror gone'`);
    assert.equal(await failures(), 4, 'the pause for a failing mirror');
    await update('rows_received = rows_received + 5');
    assert.equal(await failures(), 5, 'a batch staged behind the failure');
    await update(`status_reason = 'still gone'`);
    assert.equal(await failures(), 5, 'no batch, no new pause');
    await update(`status = 'active', pause_cause = NULL, status_reason = NULL`);
    assert.equal(await failures(), 5, 'resumed, nothing applied yet');
    await update('rows_received = rows_received + 5, rows_applied = rows_applied + 5');
    assert.equal(await failures(), 0, 'rows reached the mirror');
  });
  test('one statement over many lineages moves each failure count by its own row', async () => {
    const device = await newDevice(ctx.store, 'flow-trigger-group');
    const ids = [uuidv7(), uuidv7(), uuidv7(), uuidv7()];
    for (const [i, id] of ids.entries()) {
      await ctx.store.query(
        `INSERT INTO edge_table_lineages (id, project_id, device_id, source_table, key_kind, key_columns, status, pause_cause)
         VALUES ($1, $2, $3, $4, 'primary_key', '["id"]', 'active', NULL)`,
        [id, device.project_id, device.device_id, `t${i}`],
      );
    }
    // The last lineage has no flow row yet: a failure creates it with 1.
    for (const id of ids.slice(0, 3)) await ctx.store.query('INSERT INTO edge_lineage_flow (lineage_id, consecutive_failures) VALUES ($1, 2)', [id]);
    await ctx.store.query(
      `UPDATE edge_table_lineages AS l SET rows_received = l.rows_received + 5, rows_applied = l.rows_applied + u.applied,
         status = u.status, pause_cause = u.cause, updated_at = now()
       FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[]) AS u(id, applied, status, cause) WHERE l.id = u.id`,
      [ids, [5, 0, 0, 0], ['active', 'paused', 'active', 'paused'], [null, 'materialization_failed', null, 'materialization_failed']],
    );
    const { rows } = await ctx.store.query<{ id: string; n: number }>('SELECT lineage_id::text AS id, consecutive_failures AS n FROM edge_lineage_flow WHERE lineage_id = ANY($1::uuid[])', [ids]);
    const counts = new Map(rows.map((r) => [r.id, Number(r.n)]));
    assert.deepEqual(
      ids.map((id) => counts.get(id)),
      [0, 3, 2, 1],
      'applied rows reset, a failing batch adds, a staged batch leaves it, a first failure counts 1',
    );
  });
});
