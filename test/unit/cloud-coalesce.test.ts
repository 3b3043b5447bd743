import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { coalesceRows } from '../../src/cloud/ingest/coalesce.js';
import type { DecodedRow, RowOp } from '../../src/protocol/batch.js';

const id = (row: DecodedRow) => JSON.stringify(row.pk.map(String));
const row = (seq: number, op: RowOp, key: number, value = `v${seq}`): DecodedRow =>
  op === 'delete' ? { seq, op, pk: [BigInt(key)] } : { seq, op, pk: [BigInt(key)], row: [BigInt(key), value] };
const seqs = (rows: readonly DecodedRow[]) => rows.map((r) => r.seq);

describe('coalesceRows', () => {
  const cases: { name: string; rows: DecodedRow[]; upserts: number[]; deletes: number[] }[] = [
    { name: 'one insert', rows: [row(1, 'insert', 1)], upserts: [1], deletes: [] },
    { name: 'insert then update: the update wins', rows: [row(1, 'insert', 1), row(2, 'update', 1)], upserts: [2], deletes: [] },
    { name: 'insert then delete: a delete (the key may exist from earlier batches)', rows: [row(1, 'insert', 1), row(2, 'delete', 1)], upserts: [], deletes: [2] },
    { name: 'delete then insert: an upsert', rows: [row(1, 'delete', 1), row(2, 'insert', 1)], upserts: [2], deletes: [] },
    { name: 'keys are independent', rows: [row(1, 'insert', 1), row(2, 'insert', 2), row(3, 'delete', 1), row(4, 'update', 2)], upserts: [4], deletes: [3] },
    { name: 'snapshot counts as a write', rows: [row(1, 'delete', 5), row(2, 'snapshot', 5)], upserts: [2], deletes: [] },
    { name: 'output keeps the order of each key\'s last change', rows: [row(1, 'insert', 1), row(2, 'insert', 2), row(3, 'update', 1)], upserts: [2, 3], deletes: [] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const result = coalesceRows(c.rows, id);
      assert.deepEqual(seqs(result.upserts), c.upserts);
      assert.deepEqual(seqs(result.deletes), c.deletes);
    });
  }

  test('applying the coalesced sets equals applying every row in order (property)', () => {
    const ops: RowOp[] = ['insert', 'update', 'delete', 'snapshot'];
    const arbitraryRows = fc.array(fc.record({ op: fc.constantFrom(...ops), key: fc.integer({ min: 0, max: 6 }) }), { maxLength: 60 });
    fc.assert(
      fc.property(fc.dictionary(fc.integer({ min: 0, max: 6 }).map(String), fc.string()), arbitraryRows, (initial, specs) => {
        const rows = specs.map((s, i) => row(i + 1, s.op, s.key));
        const sequential = new Map(Object.entries(initial));
        for (const r of rows) {
          if (r.op === 'delete') sequential.delete(String(r.pk[0]));
          else sequential.set(String(r.pk[0]), String(r.row![1]));
        }
        const coalesced = new Map(Object.entries(initial));
        const { upserts, deletes } = coalesceRows(rows, id);
        const upsertKeys = new Set(upserts.map(id));
        assert.ok(deletes.every((d) => !upsertKeys.has(id(d))), 'upserts and deletes are disjoint');
        for (const d of deletes) coalesced.delete(String(d.pk[0]));
        for (const u of upserts) coalesced.set(String(u.pk[0]), String(u.row![1]));
        assert.deepEqual(coalesced, sequential);
      }),
    );
  });

  test('the identity function decides what one key is', () => {
    const zero: DecodedRow = { seq: 1, op: 'insert', pk: [0], row: [0] };
    const negativeZero: DecodedRow = { seq: 2, op: 'update', pk: [-0], row: [-0] };
    assert.equal(coalesceRows([zero, negativeZero], (r) => String(r.pk[0])).upserts.length, 1);
    assert.equal(coalesceRows([zero, negativeZero], (r) => (Object.is(r.pk[0], -0) ? '-0' : '0')).upserts.length, 2);
  });
});
