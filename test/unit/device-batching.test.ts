import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { uuidv7 } from 'uuidv7';
import { buildRowBatch, envelopeBytes, nextBatchSize, rowBatchJson, rowBytes, splitRowBatch, wireRow, type BatchHead, type SizedRow } from '../../src/device/publisher/batching.js';
import { parseRowBatch } from '../../src/protocol/batch.js';
import { keyOf, schemaFingerprint } from '../../src/protocol/schema.js';
import { sqlValue } from '../support/arbitraries.js';
import { columns } from '../support/batches.js';

const sizedRows = fc.array(
  fc.record({ schemaId: fc.integer({ min: 1, max: 3 }), bytes: fc.integer({ min: 1, max: 400 }) }),
  { maxLength: 300 },
);
const limits = fc.record({ maxRows: fc.integer({ min: 1, max: 50 }), maxBytes: fc.integer({ min: 1, max: 4000 }) });
const envelope = fc.integer({ min: 0, max: 500 });

function head(): BatchHead {
  const cols = columns([['id', 'INTEGER', 1], ['v', '']]);
  return { batchId: uuidv7(), epoch: uuidv7(), table: 't', key: keyOf(cols), schemaHash: schemaFingerprint(cols), columns: cols };
}

describe('batching', () => {
  test('batches cover every row once, in order, one schema each, within the limits (property)', () => {
    fc.assert(
      fc.property(sizedRows, limits, envelope, (rows, lim, env) => {
        const sizes: number[] = [];
        for (let at = 0; at < rows.length; at += sizes.at(-1)!) sizes.push(nextBatchSize(rows, lim, env, at));
        assert.equal(sizes.reduce((a, b) => a + b, 0), rows.length);
        let at = 0;
        for (const size of sizes) {
          const batch = rows.slice(at, at + size);
          assert.ok(size >= 1 && size <= lim.maxRows);
          assert.equal(new Set(batch.map((r) => r.schemaId)).size, 1, 'one schema per batch');
          const bytes = env + batch.reduce((a, r) => a + r.bytes, 0);
          assert.ok(bytes <= lim.maxBytes || size === 1, 'over the byte limit only as a single row');
          const next = rows[at + size];
          if (next) {
            const closedBy = size === lim.maxRows || next.schemaId !== batch[0]!.schemaId || bytes + next.bytes > lim.maxBytes;
            assert.ok(closedBy, 'a batch ends only at a limit or a schema change');
          }
          at += size;
        }
      }),
    );
  });

  test('nextBatchSize starts at an offset and is 0 past the end', () => {
    const rows: SizedRow[] = [{ schemaId: 1, bytes: 10 }, { schemaId: 2, bytes: 10 }, { schemaId: 2, bytes: 10 }];
    assert.equal(nextBatchSize(rows, { maxRows: 10, maxBytes: 100 }, 0), 1);
    assert.equal(nextBatchSize(rows, { maxRows: 10, maxBytes: 100 }, 0, 1), 2);
    assert.equal(nextBatchSize(rows, { maxRows: 10, maxBytes: 100 }, 0, 3), 0);
    assert.equal(nextBatchSize([{ schemaId: 1, bytes: 999 }], { maxRows: 10, maxBytes: 100 }, 50), 1);
  });

  test('a built batch is valid for the protocol parser and its size is bounded by envelope + rows (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('I', 'U', 'D', 'S' as const), sqlValue), { minLength: 1, maxLength: 30 }), (entries) => {
        const h = head();
        const rows = entries.map(([op, v], i) => wireRow(i + 1, op, [BigInt(i + 1)], [BigInt(i + 1), v]));
        const batch = buildRowBatch(h, rows);
        const bytes = Buffer.byteLength(JSON.stringify(batch));
        assert.ok(bytes <= envelopeBytes(h) + rows.reduce((a, r) => a + rowBytes(JSON.stringify(r)), 0));
        const parsed = (() => {
          try {
            return parseRowBatch(JSON.parse(JSON.stringify(batch)));
          } catch (error) {
            // Infinity is rejected by the cloud on purpose; everything else must parse.
            assert.equal((error as { code?: string }).code, 'invalid_number_encoding');
            return undefined;
          }
        })();
        if (parsed) {
          assert.equal(parsed.rows.length, rows.length);
          parsed.rows.forEach((r, i) => assert.equal(r.op === 'delete', entries[i]![0] === 'D'));
        }
      }),
    );
  });

  test('the body spliced from the rows\' JSON is exactly the batch\'s JSON (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('I', 'U', 'D', 'S' as const), sqlValue), { minLength: 1, maxLength: 30 }), (entries) => {
        const rows = entries.map(([op, v], i) => wireRow(i + 1, op, [BigInt(i + 1)], [BigInt(i + 1), v]));
        const batch = buildRowBatch(head(), rows);
        assert.equal(rowBatchJson(batch, rows.map((r) => JSON.stringify(r))), JSON.stringify(batch));
      }),
    );
  });

  test('splitting halves the rows, keeps their order and gives new ids', () => {
    const h = head();
    const batch = buildRowBatch(h, [1, 2, 3, 4, 5].map((seq) => wireRow(seq, 'I', [BigInt(seq)], [BigInt(seq), 'x'])));
    const [a, b] = splitRowBatch(batch, uuidv7);
    assert.deepEqual([...a.rows, ...b.rows], batch.rows);
    assert.deepEqual([a.first_seq, a.last_seq, b.first_seq, b.last_seq], [1, 2, 3, 5]);
    assert.notEqual(a.batch_id, batch.batch_id);
    assert.notEqual(a.batch_id, b.batch_id);
    assert.throws(() => splitRowBatch(buildRowBatch(h, [batch.rows[0]!]), uuidv7), RangeError);
  });
});
