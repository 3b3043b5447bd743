import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { changeOpOf, EventBuilder, originOf, rowValues } from '../../src/device/change-stream/change-stream-event.js';
import type { CapturedSchema, JournalEntry, RawJournalEntry } from '../../src/device/journal/journal-reader.js';
import { slotLayout } from '../../src/device/journal/journal-slots.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { columns } from '../support/batches.js';

const schema: CapturedSchema = {
  id: 7,
  table: 'items',
  hash: 'h',
  columns: columns([['id', 'INTEGER', 1], ['name', 'TEXT'], ['data', 'BLOB']]),
  key: { kind: 'primary_key', columns: ['id'] },
  layout: slotLayout(['id', 'name', 'data'], { kind: 'primary_key', columns: ['id'] }),
};

function entry(op: JournalEntry['op'], extra: Partial<JournalEntry>): JournalEntry {
  return { seq: 12, table: 'items', op, pk: [1n], schema, columns: schema.columns, ...extra };
}

describe('change events', () => {
  test('journal entries become events with named columns', () => {
    const builder = new EventBuilder();
    const blob = new Uint8Array([0, 255]);
    assert.deepEqual(builder.fromEntry(entry('I', { row: [1n, 'a', blob] }), 'local', 99), {
      op: 'insert',
      table: 'items',
      key: { id: 1n },
      after: { id: 1n, name: 'a', data: blob },
      seq: 12,
      origin: 'local',
      at: 99,
    });
    const update = builder.fromEntry(entry('U', { row: [1n, 'b', null], oldRow: [1n, 'a', blob] }), 'local', 99);
    assert.deepEqual([update.op, update.before?.name, update.after?.name], ['update', 'a', 'b']);
    const del = builder.fromEntry(entry('D', {}), 'local', 99);
    assert.deepEqual([del.op, del.before, del.after], ['delete', undefined, undefined]);
    assert.equal(builder.fromEntry(entry('S', { row: [1n, 'a', null] }), 'local', 99).op, 'snapshot');
  });

  test('an unknown op code is a corrupt journal, not a guess', () => {
    assert.equal(changeOpOf('U', 1), 'update');
    assert.throws(() => changeOpOf('X', 5), (e) => isSynclineError(e) && e.code === 'journal_corrupt' && e.context.seq === 5);
  });

  test("origin is the journal entry's own: 'R' (applied by two-way sync) is remote, 'L' is local", () => {
    for (const op of ['I', 'U', 'D', 'S'] as const) {
      const raw: RawJournalEntry = { seq: 1, table: 't', op, beforeImage: false, origin: 'L', values: [1n], schemaId: 1 };
      assert.equal(originOf(raw), 'local');
      assert.equal(originOf({ ...raw, origin: 'R' }), 'remote');
    }
  });

  test('a column named __proto__ is data, not the prototype', () => {
    const row = rowValues(['__proto__', 'constructor'], ['x', 1n]);
    assert.equal(Object.getPrototypeOf(row), Object.prototype);
    assert.deepEqual(Object.keys(row), ['__proto__', 'constructor']);
    assert.equal(Object.getOwnPropertyDescriptor(row, '__proto__')!.value, 'x');
  });
});
