import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { approveReview } from '../../src/cloud/governance/approve.js';
import { listAudit } from '../../src/cloud/governance/audit.js';
import { claimReview } from '../../src/cloud/governance/review-actions.js';
import { getReview } from '../../src/cloud/governance/reviews.js';
import { openStore } from '../../src/cloud/store/open-store.js';
import { transactionWithRetry, type Store } from '../../src/cloud/store/store.js';
import { SynclineError } from '../../src/protocol/errors.js';
import type { TableSpec } from '../support/cloud-batches.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { columnsFor, FakeDevice, openReview, upsert } from '../support/governance-fixtures.js';
import { openTestStore, postgresReachable, type TestStore } from '../support/stores.js';

const SPEC: TableSpec = { table: 'raced', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'v', type: 'TEXT' }] };
const ROUNDS = 8;

/**
 * Two operators racing for one review, each through a connection of its own: on
 * PostgreSQL two separate pools on one database, on PGlite (one connection) two
 * transactions queued at once. Exactly one wins every time.
 */
for (const kind of ['postgres', 'pglite'] as const) {
  describe(`two operators racing for one review [${kind}]`, { skip: kind === 'postgres' && !postgresReachable ? 'PostgreSQL is not reachable' : false }, () => {
    let handle: TestStore;
    let alice: Store;
    let bob: Store;

    before(async () => {
      handle = await openTestStore(kind);
      alice = handle.store;
      bob = handle.url ? await openStore({ databaseUrl: handle.url, migrate: false }) : handle.store;
    });
    after(async () => {
      if (bob !== alice) await bob.close();
      await handle.close();
    });

    async function queuedReview(): Promise<string> {
      const ack = await new FakeDevice(alice, await newDevice(alice)).send(SPEC, [upsert(1, [1n, 'x'])]);
      return (await openReview(alice, ack.lineage_id)).id;
    }

    test('claims: exactly one wins, the other is told who has it', async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const id = await queuedReview();
        const results = await Promise.allSettled([
          transactionWithRetry(alice, (tx) => claimReview(tx, id, 'alice')),
          transactionWithRetry(bob, (tx) => claimReview(tx, id, 'bob')),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1, `round ${round}: ${JSON.stringify(results.map((r) => r.status))}`);
        const lost = results.find((r) => r.status === 'rejected')!.reason as unknown;
        assert.ok(lost instanceof SynclineError && lost.code === 'conflict' && /is claimed by (alice|bob)/.test(lost.message), String(lost));
        const review = await getReview(alice, id);
        assert.deepEqual([review.status, review.action_version], ['in_review', 2]);
        assert.equal((await listAudit(alice, { review_id: id, action: 'review.claim' })).entries.length, 1);
      }
    });

    test('an approval racing a forced takeover: exactly one takes effect', async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const id = await queuedReview();
        const claimed = await transactionWithRetry(alice, (tx) => claimReview(tx, id, 'alice'));
        const columns = await columnsFor(alice, id, { default_action: 'mirror' });
        const results = await Promise.allSettled([
          transactionWithRetry(alice, (tx) => approveReview(tx, id, { action_version: claimed.action_version, columns }, 'alice')),
          transactionWithRetry(bob, (tx) => claimReview(tx, id, 'bob', { force: true })),
        ]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `round ${round}: ${JSON.stringify(results.map((r) => r.status))}`);
        const review = await getReview(alice, id);
        if (results[0].status === 'fulfilled') assert.equal(review.status, 'approved');
        else assert.deepEqual([review.status, review.claimed_by, (results[0].reason as SynclineError).code], ['in_review', 'bob', 'stale_version']);
      }
    });
  });
}
