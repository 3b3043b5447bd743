import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { parseLiteralList } from '../../src/device/journal/sql-literal.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { sameValue, type SqlValue } from '../../src/protocol/values.js';
import { sqlValue } from '../support/arbitraries.js';

// An in-memory SQLite renders the literals exactly as the capture triggers do.
const db = new Database(':memory:');
db.defaultSafeIntegers(true);

function quoteAll(values: readonly SqlValue[]): { text: string; stored: SqlValue[] } {
  const exprs = values.map(() => 'quote(?)').join(` || ',' || `);
  const text = db.prepare(`SELECT ${exprs}`).pluck().get(...values.map(bindable)) as string;
  const stored = db.prepare(`SELECT ${values.map(() => '?').join(', ')}`).raw().get(...values.map(bindable)) as SqlValue[];
  return { text, stored: stored.map(normalize) };
}

function bindable(value: SqlValue): unknown {
  return value instanceof Uint8Array ? Buffer.from(value) : value;
}

/**
 * What quote() can express: it drops the sign of -0.0 (SQLite's REAL to text
 * conversion does) and stops TEXT at the first NUL; both are documented limits.
 */
function normalize(value: SqlValue): SqlValue {
  if (typeof value === 'number' && Object.is(value, -0)) return 0;
  if (typeof value === 'string' && value.includes('\0')) return value.slice(0, value.indexOf('\0'));
  if (value instanceof Uint8Array) return new Uint8Array(value);
  return value;
}

function assertSameList(actual: SqlValue[], expected: SqlValue[]): void {
  assert.equal(actual.length, expected.length);
  expected.forEach((value, i) => assert.ok(sameValue(actual[i]!, value), `value ${i}: ${String(actual[i])} !== ${String(value)}`));
}

describe('parseLiteralList', () => {
  test('decodes what SQLite quote() renders, for every storage class (property)', () => {
    fc.assert(
      fc.property(fc.array(sqlValue, { minLength: 1, maxLength: 12 }), (values) => {
        const { text, stored } = quoteAll(values);
        assertSameList(parseLiteralList(text), stored);
      }),
      { numRuns: 2000 },
    );
  });

  test('text with commas, quotes, newlines and emoji survives inside a list (property)', () => {
    const nasty = fc.array(fc.constantFrom('a', 'z', ',', "'", "''", '"', '\n', ' ', '😀', 'é', '\\', 'NULL', "X'"), { maxLength: 12 }).map((parts) => parts.join(''));
    fc.assert(
      fc.property(fc.array(nasty, { minLength: 1, maxLength: 8 }), (texts) => {
        const { text } = quoteAll(texts);
        assert.deepEqual(parseLiteralList(text), texts);
      }),
    );
  });

  test('the edges: 64-bit limits, infinities, NULL, empty text and blob', () => {
    const text = quoteAll([9223372036854775807n, -9223372036854775808n, null, '', new Uint8Array(0)]).text;
    assertSameList(parseLiteralList(text), [9223372036854775807n, -9223372036854775808n, null, '', new Uint8Array(0)]);
    assert.deepEqual(parseLiteralList('9.0e+999,-9.0e+999,2.0,1.0e+20,0.30000000000000004'), [Infinity, -Infinity, 2, 1e20, 0.30000000000000004]);
    assert.equal(db.prepare('SELECT quote(1e308 * 10)').pluck().get(), '9.0e+999');
    assert.deepEqual(parseLiteralList("'it''s','',''''"), ["it's", '', "'"]);
    assert.deepEqual(parseLiteralList("X'00FF',x'ab'"), [new Uint8Array([0, 255]), new Uint8Array([0xab])]);
    assert.deepEqual(parseLiteralList(''), []);
  });

  test('integers stay integers and reals stay reals, whatever their digits', () => {
    const [a, b, c] = parseLiteralList('2,2.0,-0');
    assert.equal(a, 2n);
    assert.equal(b, 2);
    assert.equal(c, 0n);
  });

  test('malformed input is a journal_corrupt error, never a wrong value', () => {
    for (const bad of ["'open", 'NUL', '1,', ',1', '1 2', "X'0'", "X'zz'", 'abc', '-', "'a'b", '1..2x']) {
      assert.throws(
        () => parseLiteralList(bad),
        (error: unknown) => isSynclineError(error) && error.code === 'journal_corrupt',
        `should reject ${JSON.stringify(bad)}`,
      );
    }
  });
});
