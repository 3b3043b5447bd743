import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { changes } from '../../src/device/change-stream/change-stream.js';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';
import { lowestHonouredCheckpoint, setCheckpointRetention } from '../../src/device/change-stream/checkpoint-retention.js';
import { readCheckpoint, writeCheckpoint } from '../../src/device/change-stream/checkpoint-store.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import type { SqliteDriver } from '../../src/device/driver/sqlite-driver.js';
import { pruneAcked } from '../../src/device/journal/journal-prune.js';
import { maxJournalSeq } from '../../src/device/journal/journal-state.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { tempDir } from '../support/temp.js';
import { app, collect, replay, tableState, waitFor } from './change-stream-support.js';

const TABLES = ['items', 'order_lines', 'kv', 'log_lines', 'ünïcødé "tåble", 1'];

/** What the publisher does once the cloud acked everything: prune each table up to the newest seq. */
async function pruneAll(db: SqliteDriver): Promise<number> {
  const newest = await maxJournalSeq(db);
  let pruned = 0;
  for (const table of TABLES) pruned += await pruneAcked(db, table, newest);
  return pruned;
}

async function withDb<T>(path: string, fn: (db: SqliteDriver) => Promise<T>): Promise<T> {
  const db = BetterSqlite3Driver.open(path);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const expired = (error: unknown) => isSynclineError(error) && error.code === 'checkpoint_expired';

describe('change stream: durable checkpoints', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-stream-checkpoint-');
  });
  after(() => dir.remove());

  test('a restart resumes exactly after the acknowledged event', async () => {
    const path = join(dir.path, 'restart.db');
    await app(path, 'setup');
    const first = await changes({ db: path, tables: ['items'], checkpoint: 'search-indexer' });
    await app(path, 'insert', 12, 1);
    const seen: ChangeEvent[] = [];
    for await (const event of first) {
      seen.push(event);
      if (seen.length === 5) {
        first.ack(event.seq);
        break;
      }
    }
    assert.equal((await withDb(path, (db) => readCheckpoint(db, 'search-indexer')))!.seq, seen[4]!.seq, 'close wrote the acknowledged seq');

    // Leaving the loop without ack: the event in hand was not acknowledged and comes again.
    const second = await changes({ db: path, tables: ['items'], checkpoint: 'search-indexer' });
    const again: ChangeEvent[] = [];
    for await (const event of second) {
      again.push(event);
      if (again.length === 3) break;
    }
    assert.deepEqual(again.map((e) => e.key.id), [6n, 7n, 8n]);

    const third = await changes({ db: path, tables: ['items'], checkpoint: 'search-indexer' });
    const rest: ChangeEvent[] = [];
    third.on('change', (event) => void rest.push(event));
    await app(path, 'update', 1, 1);
    const lastSeq = await withDb(path, maxJournalSeq);
    await waitFor(() => rest.at(-1)?.seq === lastSeq, 'the update');
    await third.close();
    assert.deepEqual(rest.map((e) => [e.op, e.key.id]), [['insert', 8n], ['insert', 9n], ['insert', 10n], ['insert', 11n], ['insert', 12n], ['update', 1n]]);
    assert.equal(await third.closed, undefined);
    assert.equal((await withDb(path, (db) => readCheckpoint(db, 'search-indexer')))!.seq, lastSeq);
  });

  test('pruning keeps what a checkpoint still needs', async () => {
    const path = join(dir.path, 'prune.db');
    await app(path, 'setup');
    const stream = await changes({ db: path, checkpoint: 'cache' });
    await app(path, 'insert', 10, 1);
    const seen = await collect(stream, (events) => events.length === 7);
    await app(path, 'update', 5, 1);
    const pruned = await withDb(path, pruneAll);
    assert.equal(pruned, 7, 'only what the checkpoint acknowledged');
    const lastSeq = await withDb(path, maxJournalSeq);
    const resumed = await collect(await changes({ db: path, checkpoint: 'cache' }), (events) => events.at(-1)?.seq === lastSeq);
    assert.equal(resumed[0]!.seq, seen[6]!.seq + 1);
    assert.equal(resumed.length, lastSeq - seen[6]!.seq);
  });

  test('beyond the retention a checkpoint expires; a snapshot bootstraps it again', async () => {
    const path = join(dir.path, 'expire.db');
    await app(path, 'setup');
    const stream = await changes({ db: path, tables: ['items'], checkpoint: 'laggard', retention: { maxEntries: 20 } });
    await app(path, 'insert', 2, 1);
    await collect(stream, (events) => events.length === 1);
    await app(path, 'insert', 30, 3);
    assert.ok((await withDb(path, pruneAll)) > 1, 'pruned past the checkpoint, which is more than 20 entries behind');
    await assert.rejects(changes({ db: path, tables: ['items'], checkpoint: 'laggard' }), expired);
    await assert.rejects(changes({ db: path, tables: ['items'], from: 0 }), expired, 'an unnamed stream is told too');

    const again = await changes({ db: path, tables: ['items'], checkpoint: 'laggard', snapshot: true });
    const snapshotSeq = again.snapshotSeq!;
    await app(path, 'update', 3, 1);
    const lastItem = await withDb(path, async (db) => Number((await db.get<{ seq: bigint }>("SELECT max(seq) AS seq FROM _syncline_journal JOIN _syncline_schemas ON _syncline_schemas.id = schema_id WHERE tbl = 'items'"))!.seq));
    const events = await collect(again, (seen) => seen.at(-1)?.seq === lastItem);
    assert.deepEqual(replay(events, snapshotSeq).get('items'), await tableState(path, 'items'));
    assert.ok((await withDb(path, (db) => readCheckpoint(db, 'laggard')))!.seq >= lastItem);
  });

  test('retention: checkpoints too far behind or too old are not honoured', async () => {
    const path = join(dir.path, 'retention.db');
    await app(path, 'setup');
    await (await changes({ db: path })).close();
    await withDb(path, async (db) => {
      const now = Date.parse('2030-01-01T00:00:00Z');
      await setCheckpointRetention(db, { maxEntries: 100, maxAgeMs: 60_000 });
      await writeCheckpoint(db, 'fresh', 950, now - 1000);
      await writeCheckpoint(db, 'far-behind', 850, now);
      await writeCheckpoint(db, 'stale', 990, now - 120_000);
      assert.equal(await lowestHonouredCheckpoint(db, 1000, now), 950);
      assert.equal(await lowestHonouredCheckpoint(db, 1000, now + 60_000), undefined, 'a minute later nothing is fresh');
    });
  });

  test('a running stream whose entries were pruned under it stops with checkpoint_expired', async () => {
    const path = join(dir.path, 'live-expire.db');
    await app(path, 'setup');
    await (await changes({ db: path, tables: ['items'] })).close(); // installs capture
    const from = await withDb(path, maxJournalSeq);
    await app(path, 'insert', 3, 1);
    // Opened after the writes (from before them), so its first read finds them at once; the long poll
    // interval keeps a full one-event buffer from counting as a stalled subscriber before the test takes it.
    const stream = await changes({ db: path, tables: ['items'], from, maxBuffered: 1, pollIntervalMs: 60_000 });
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.equal(first.done, false);
    await withDb(path, pruneAll);
    await assert.rejects(async () => {
      for (;;) if ((await iterator.next()).done) break;
    }, expired);
    assert.ok(expired(await stream.closed));
  });
});
