import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { parseLiteralList, renderLiteralList } from '../../src/device/journal/sql-literal.js';
import { sameValue, type SqlValue } from '../../src/protocol/values.js';

/**
 * renderLiteralList renders keys for the dirty set and the outbox; the capture
 * triggers render the same keys with SQLite's quote(). Both must agree exactly,
 * and parseLiteralList must read back whatever either wrote.
 */

const db = new Database(':memory:');
db.defaultSafeIntegers(true);
const quote = db.prepare('SELECT quote(?)').pluck();

const bind = (value: SqlValue): unknown => (value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value);

const int64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 2n ** 53n + 1n, -(2n ** 53n) - 1n));
/** TEXT without NUL (quote() stops at a NUL). Lone surrogates are kept: the codec is JS to JS. */
const textNoNul = fc.string({ unit: 'binary', maxLength: 40 }).map((s) => s.replaceAll('\u0000', ''));
/** Text SQLite stores unchanged: well-formed UTF-16, no NUL. */
const sqliteText = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replaceAll('\u0000', '')),
  fc.constantFrom('', "'", "''", "it's", 'a,b', ',', "','", 'NULL', "X'00'", '\n', '😀', '-1', '1.5', 'e'),
);
const blob = fc.uint8Array({ maxLength: 48 });
const finiteReal = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(-0, 0, 0.1 + 0.2, 5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 2, -2, 1e21, 1e-7, 123456789012345680000),
);

const anyValue: fc.Arbitrary<SqlValue> = fc.oneof(fc.constant(null), int64, textNoNul, blob, finiteReal);
const keyValue: fc.Arbitrary<SqlValue> = fc.oneof(int64, sqliteText, blob);

function assertSameList(actual: readonly SqlValue[], expected: readonly SqlValue[]): void {
  assert.equal(actual.length, expected.length, 'list length');
  expected.forEach((value, i) => {
    assert.ok(sameValue(actual[i]!, value), `value ${i}: ${String(actual[i])} (${typeof actual[i]}) !== ${String(value)} (${typeof value})`);
  });
}

describe('renderLiteralList / parseLiteralList', () => {
  test('round trip for INTEGER (64-bit), TEXT, BLOB, NULL and finite REAL, storage class kept (property)', () => {
    fc.assert(
      fc.property(fc.array(anyValue, { maxLength: 10 }), (values) => {
        assertSameList(parseLiteralList(renderLiteralList(values)), values);
      }),
      { numRuns: 3000 },
    );
  });

  test('edges: -0.0, integral reals, extremes, empty text and blob, the empty list', () => {
    const values: SqlValue[] = [-0, 0, 2, -2, 1e21, 5e-324, 1.7976931348623157e308, -(2n ** 63n), 2n ** 63n - 1n, '', new Uint8Array(0), null];
    const text = renderLiteralList(values);
    assertSameList(parseLiteralList(text), values);
    assert.equal(renderLiteralList([2, -0, 0]), '2.0,-0.0,0.0');
    assert.equal(renderLiteralList([]), '');
    assert.deepEqual(parseLiteralList(''), []);
  });

  test('INTEGER, TEXT and BLOB key values render exactly as SQLite quote() (property)', () => {
    fc.assert(
      fc.property(fc.array(keyValue, { minLength: 1, maxLength: 4 }), (key) => {
        const expected = key.map((v) => quote.get(bind(v)) as string).join(',');
        assert.equal(renderLiteralList(key), expected);
        assertSameList(parseLiteralList(expected), key);
      }),
      { numRuns: 3000 },
    );
  });

  test('NULL renders as quote(NULL)', () => {
    assert.equal(renderLiteralList([null]), quote.get(null));
  });

  test('what SQLite stores for a key, read back and rendered, equals its quote() (property)', () => {
    // The device reads keys back from its tables (Buffer for BLOB, bigint for INTEGER) before rendering.
    const roundTrip = db.prepare('SELECT ? AS v').pluck();
    fc.assert(
      fc.property(keyValue, (value) => {
        const stored = roundTrip.get(bind(value)) as SqlValue | Buffer;
        const asValue: SqlValue = Buffer.isBuffer(stored) ? new Uint8Array(stored) : stored;
        assert.equal(renderLiteralList([asValue]), quote.get(bind(value)));
      }),
      { numRuns: 1000 },
    );
  });
});
