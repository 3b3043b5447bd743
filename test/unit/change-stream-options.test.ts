import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { selectsTable, streamSettings, type ChangeStreamOptions } from '../../src/device/change-stream/change-stream-options.js';
import { bootstrapGuardName, validCheckpointName } from '../../src/device/change-stream/checkpoint-store.js';
import { isSynclineError } from '../../src/protocol/errors.js';

const invalid = (field: string) => (error: unknown) => isSynclineError(error) && error.code === 'invalid_config' && error.context.field === field;

describe('change stream options', () => {
  test('defaults', () => {
    const s = streamSettings({ db: 'x.db' });
    assert.equal(s.tables, undefined);
    assert.deepEqual([...s.ops].sort(), ['delete', 'insert', 'snapshot', 'update']);
    assert.deepEqual([s.snapshot, s.autoAck, s.pollIntervalMs, s.checkpointIntervalMs, s.maxBuffered], [false, true, 50, 1000, 10_000]);
  });

  test('the allowlist ignores case and merges before-image requests', () => {
    const s = streamSettings({ db: 'x.db', tables: ['Items', { name: 'ITEMS', beforeImages: true }, 'kv'] });
    assert.deepEqual([...s.tables!], [['items', true], ['kv', false]]);
    assert.ok(selectsTable(s, 'iTeMs'));
    assert.ok(!selectsTable(s, 'orders'));
  });

  test('contradictions and bad values are refused with the field named', () => {
    const cases: [Partial<ChangeStreamOptions>, string][] = [
      [{ ops: ['upsert' as 'insert'] }, 'ops'],
      [{ ops: [] }, 'ops'],
      [{ snapshot: true, ops: ['insert'] }, 'ops'],
      [{ snapshot: true, from: 3 }, 'from'],
      [{ from: -1 }, 'from'],
      [{ maxBuffered: 0 }, 'maxBuffered'],
      [{ pollIntervalMs: 1.5 }, 'pollIntervalMs'],
      [{ checkpoint: 'has space' }, 'checkpoint'],
      [{ checkpoint: 'x~bootstrap' }, 'checkpoint'],
      [{ tables: [''] }, 'tables'],
    ];
    for (const [options, field] of cases) assert.throws(() => streamSettings({ db: 'x.db', ...options }), invalid(field), JSON.stringify(options));
  });

  test('checkpoint names people type are accepted; the guard name is not one of them', () => {
    for (const name of ['search-indexer', 'app/cache:v2', 'a.b_c']) assert.equal(validCheckpointName(name), name);
    assert.throws(() => validCheckpointName(bootstrapGuardName('search-indexer')));
  });
});
