import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseRowBatch } from '../../src/protocol/batch.js';
import { SynclineError, type ErrorCode } from '../../src/protocol/errors.js';
import { affinityOf, schemaFingerprint } from '../../src/protocol/schema.js';
import { columns, wireBatch } from '../support/batches.js';

const rows = [
  { seq: 1, op: 'insert' as const, pk: [1], row: [1, 'a'] },
  { seq: 2, op: 'update' as const, pk: [1], row: [1, 'b'] },
  { seq: 5, op: 'delete' as const, pk: [1] },
];

function rejects(input: unknown, code: ErrorCode, field?: string): void {
  assert.throws(
    () => parseRowBatch(input),
    (e: unknown) => e instanceof SynclineError && e.code === code && (field === undefined || e.context.field === field),
    `expected ${code}${field ? ` at ${field}` : ''}`,
  );
}

describe('row batch validation', () => {
  test('a valid batch decodes values with their storage class', () => {
    const batch = parseRowBatch(wireBatch({ rows }));
    assert.equal(batch.rows.length, 3);
    assert.deepEqual(batch.rows[0], { seq: 1, op: 'insert', pk: [1n], row: [1n, 'a'] });
    assert.equal(batch.rows[2]!.row, undefined);
  });

  test('tenant and device fields in the payload are dropped, never kept', () => {
    const batch = parseRowBatch({ ...wireBatch({ rows }), org_id: 'evil', device_id: 'other', project_id: 'x' });
    assert.equal('org_id' in batch, false);
    assert.equal('device_id' in batch, false);
    assert.equal('project_id' in batch, false);
  });

  const valid = () => wireBatch({ rows });
  const cases: [string, () => unknown, ErrorCode, string?][] = [
    ['not an object', () => [1, 2], 'invalid_batch', '(root)'],
    ['wrong format version', () => ({ ...valid(), format_version: 2 }), 'invalid_format_version', 'format_version'],
    ['batch id not a UUIDv7', () => ({ ...valid(), batch_id: '6f1c2a9e-1111-4111-8111-111111111111' }), 'invalid_batch_id', 'batch_id'],
    ['epoch not a UUIDv7', () => ({ ...valid(), journal_epoch: 'yesterday' }), 'invalid_batch_id', 'journal_epoch'],
    ['missing rows', () => ({ ...valid(), rows: undefined }), 'invalid_batch', 'rows'],
    ['too many rows', () => ({ ...valid(), rows: Array.from({ length: 10_001 }, (_, i) => ({ seq: i + 1, op: 'delete', pk: [i] })) }), 'batch_too_many_rows', 'rows'],
    ['first_seq lies', () => ({ ...valid(), first_seq: 2 }), 'row_count_mismatch', 'first_seq'],
    ['rows out of order', () => wireBatch({ rows: [rows[1]!, rows[0]!] }), 'row_count_mismatch', 'rows.1.seq'],
    ['schema hash does not match', () => ({ ...valid(), schema: { ...valid().schema, hash: 'a'.repeat(64) } }), 'schema_hash_mismatch', 'schema.hash'],
    ['row too short', () => wireBatch({ rows: [{ seq: 1, op: 'insert', pk: [1], row: [1] }] }), 'row_shape_mismatch', 'rows.0.row'],
    ['delete with a row', () => wireBatch({ rows: [{ seq: 1, op: 'delete', pk: [1], row: [1, 'x'] }] }), 'row_shape_mismatch', 'rows.0.row'],
    ['null key', () => wireBatch({ rows: [{ seq: 1, op: 'delete', pk: [null] }] }), 'row_shape_mismatch', 'rows.0.pk'],
    ['unknown op', () => wireBatch({ rows: [{ seq: 1, op: 'upsert' as 'insert', pk: [1], row: [1, 'a'] }] }), 'invalid_batch', 'rows.0.op'],
    ['NaN smuggled as a tagged real', () => wireBatch({ rows: [{ seq: 1, op: 'insert', pk: [1], row: [1, { $real: 'NaN' }] }] }), 'invalid_number_encoding', 'rows.0.row.1'],
    ['key columns differ from schema', () => ({ ...valid(), key: { kind: 'primary_key', columns: ['name'] } }), 'invalid_batch', 'key.columns'],
    ['negative seq', () => wireBatch({ rows: [{ seq: -1, op: 'delete', pk: [1] }] }), 'invalid_batch', 'first_seq'],
  ];
  for (const [name, make, code, field] of cases) {
    test(`refuses: ${name}`, () => rejects(make(), code, field));
  }

  test('errors carry the batch id and table', () => {
    const bad = wireBatch({ table: 'readings', rows: [{ seq: 1, op: 'insert', pk: [1], row: [1, { $real: 'Infinity' }] }] });
    assert.throws(
      () => parseRowBatch(bad),
      (e: unknown) => e instanceof SynclineError && e.context.batch_id === bad.batch_id && e.context.table === 'readings',
    );
  });
});

describe('schema fingerprint', () => {
  test('ignores column order and declared-type spelling, not affinity or key', () => {
    const a = columns([['id', 'INTEGER', 1], ['name', 'VARCHAR(20)']]);
    const b = columns([['name', 'TEXT'], ['id', 'INT', 1]]);
    assert.equal(schemaFingerprint(a), schemaFingerprint(b));
    assert.notEqual(schemaFingerprint(a), schemaFingerprint(columns([['id', 'INTEGER', 1], ['name', 'BLOB']])));
    assert.notEqual(schemaFingerprint(a), schemaFingerprint(columns([['id', 'INTEGER'], ['name', 'TEXT', 1]])));
    assert.match(schemaFingerprint(a), /^[0-9a-f]{64}$/);
  });

  test('is the SHA-256 of the canonical columns, asked first or again, whatever the names hold', () => {
    const canonical = (cols: ReturnType<typeof columns>) =>
      createHash('sha256')
        .update(JSON.stringify([...cols].sort((x, y) => (x.name < y.name ? -1 : 1)).map((c) => ({ affinity: c.affinity, name: c.name, notnull: c.notnull, pk: c.pk }))))
        .digest('hex');
    // Names that would run together in a key without lengths: each list must keep a hash of its own.
    const lists = [columns([['a1', 'TEXT'], ['b', 'TEXT']]), columns([['a', 'TEXT'], ['1b', 'TEXT']]), columns([['a', 'TEXT1']]), columns([['aTEXT', '']]), columns([['x;2:y', 'INTEGER', 1]])];
    for (const round of [1, 2]) for (const cols of lists) assert.equal(schemaFingerprint(cols), canonical(cols), `round ${round}: ${JSON.stringify(cols)}`);
    const required = columns([['v', 'TEXT']]);
    required[0]!.notnull = true;
    assert.equal(schemaFingerprint(required), canonical(required));
    assert.notEqual(schemaFingerprint(required), schemaFingerprint(columns([['v', 'TEXT']])));
  });

  test('affinity follows SQLite rules in their order', () => {
    const expected: [string, string][] = [
      ['INTEGER', 'INTEGER'], ['BIGINT', 'INTEGER'], ['VARCHAR(10)', 'TEXT'], ['CLOB', 'TEXT'], ['BLOB', 'BLOB'], ['', 'BLOB'],
      ['REAL', 'REAL'], ['DOUBLE PRECISION', 'REAL'], ['FLOATING POINT', 'INTEGER'], ['DECIMAL(10,5)', 'NUMERIC'], ['BOOLEAN', 'NUMERIC'], ['CHARINT', 'INTEGER'],
    ];
    for (const [declared, affinity] of expected) assert.equal(affinityOf(declared), affinity, declared);
  });
});
