import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { uuidv7 } from 'uuidv7';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { applyControl, readPausedTables } from '../../src/device/publisher/control-state.js';
import { readCursors } from '../../src/device/journal/cursors.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { readEpoch } from '../../src/device/journal/journal-state.js';
import type { ControlMessage } from '../../src/protocol/control.js';
import { tempDir } from '../support/temp.js';

/** The device's durable flow-control state: control order, redeliveries, and the resume watermark. */

const LINEAGE = '0190d8a4-1c7b-7cc2-9a8e-6f1d2e3c4b5a';

function control(type: ControlMessage['type'], extra: Partial<ControlMessage> = {}): ControlMessage {
  return {
    type,
    reason: type === 'pause_lineage' ? 'volume_backpressure' : 'backlog_drained',
    control_id: uuidv7(),
    lineage_id: LINEAGE,
    source_table: 'items',
    journal_epoch: null,
    server_watermark: 0,
    issued_at: new Date().toISOString(),
    ...extra,
  } as ControlMessage;
}

describe('device control state', () => {
  let dir: ReturnType<typeof tempDir>;
  let db: BetterSqlite3Driver;
  let epoch: string;
  before(async () => {
    dir = tempDir('syncline-control-state-');
    const path = join(dir.path, 'app.db');
    const app = new Database(path);
    app.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)');
    app.close();
    db = BetterSqlite3Driver.open(path);
    await ensureCapture(db);
    for (let i = 1; i <= 20; i++) await db.run('INSERT INTO items VALUES (?, ?)', [i, `v${i}`]);
    epoch = await readEpoch(db);
  });
  after(async () => {
    await db.close();
    dir.remove();
  });

  const journal = async () => Number((await db.get<{ n: bigint }>("SELECT count(*) AS n FROM _syncline_journal JOIN _syncline_schemas ON _syncline_schemas.id = schema_id WHERE tbl = 'items'"))!.n);
  const cursor = async () => (await readCursors(db, epoch)).get('items') ?? 0;

  test('a pause is kept in the file; a redelivery changes nothing; an older control is stale', async () => {
    const older = control('resume_lineage');
    const pause = control('pause_lineage');
    assert.deepEqual(await applyControl(db, pause, epoch), { control_id: pause.control_id, status: 'applied' });
    assert.deepEqual([...(await readPausedTables(db)).keys()], ['items']);
    assert.equal((await readPausedTables(db)).get('items')!.reason, 'volume_backpressure');
    assert.deepEqual(await applyControl(db, pause, epoch), { control_id: pause.control_id, status: 'applied' });
    assert.deepEqual(await applyControl(db, older, epoch), { control_id: older.control_id, status: 'stale' });
    assert.deepEqual([...(await readPausedTables(db)).keys()], ['items'], 'the late, older resume did not undo the newer pause');
  });

  test("a resume in the current epoch moves the cursor up to the cloud's watermark and prunes; never down", async () => {
    const before = await cursor();
    const entries = await journal();
    const resume = control('resume_lineage', { journal_epoch: epoch, server_watermark: before + 10 });
    const applied = await applyControl(db, resume, epoch);
    assert.equal(applied.status, 'applied');
    assert.equal(applied.cursorAdvancedTo, before + 10);
    assert.equal(await cursor(), before + 10);
    assert.ok((await journal()) < entries, 'what the cloud holds is pruned');
    assert.equal((await readPausedTables(db)).size, 0);
    const lower = control('resume_lineage', { journal_epoch: epoch, server_watermark: 1 });
    assert.equal((await applyControl(db, lower, epoch)).cursorAdvancedTo, undefined);
    assert.equal(await cursor(), before + 10);
  });

  test("a watermark of another epoch says nothing about this journal", async () => {
    const before = await cursor();
    const resume = control('resume_lineage', { journal_epoch: uuidv7(), server_watermark: before + 5 });
    assert.equal((await applyControl(db, resume, epoch)).cursorAdvancedTo, undefined);
    assert.equal(await cursor(), before);
  });
});
