import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import type { SqliteDriver } from '../../src/device/driver/sqlite-driver.js';
import { pruneAcked } from '../../src/device/journal/journal-prune.js';
import { JournalReader } from '../../src/device/journal/journal-reader.js';
import { tempDir } from '../support/temp.js';

async function seqs(db: SqliteDriver): Promise<[number, string][]> {
  const rows = await db.all<{ seq: bigint; tbl: string }>('SELECT seq, tbl FROM _syncline_journal JOIN _syncline_schemas ON _syncline_schemas.id = schema_id ORDER BY seq');
  return rows.map((r) => [Number(r.seq), r.tbl]);
}

describe('journal pruning', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-prune-');
  });
  after(() => dir.remove());

  test('prunes only the acked table, never the newest entry, never above the lowest checkpoint', async () => {
    const path = join(dir.path, 'prune.db');
    const app = new Database(path);
    app.pragma('journal_mode = WAL');
    app.exec('CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)');
    const db = BetterSqlite3Driver.open(path);
    try {
      await ensureCapture(db);
      for (let i = 1; i <= 4; i++) app.exec(`INSERT INTO a VALUES (${i}, 'a${i}'); INSERT INTO b VALUES (${i}, 'b${i}')`);
      assert.deepEqual((await seqs(db)).map(([s]) => s), [1, 2, 3, 4, 5, 6, 7, 8]);

      await db.exec("INSERT INTO _syncline_checkpoints (name, seq, updated_at) VALUES ('stream', 5, 'now')");
      assert.equal(await pruneAcked(db, 'a', 7), 3, 'a at 1, 3, 5: at or below the checkpoint');
      assert.deepEqual(await seqs(db), [[2, 'b'], [4, 'b'], [6, 'b'], [7, 'a'], [8, 'b']]);

      await db.exec("UPDATE _syncline_checkpoints SET seq = 100");
      assert.equal(await pruneAcked(db, 'b', 8), 3, 'the newest entry (8) stays so seqs never restart');
      assert.deepEqual(await seqs(db), [[7, 'a'], [8, 'b']]);

      app.exec("INSERT INTO a VALUES (9, 'next')");
      assert.equal(await new JournalReader(db).maxSeq(), 9, 'the next seq continues after the kept entry');
    } finally {
      await db.close();
      app.close();
    }
  });
});
