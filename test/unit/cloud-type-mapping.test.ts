import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  OVERFLOW,
  PG_TYPES,
  fromColumnText,
  fromStoredJson,
  pgSafeText,
  pgTypeFor,
  toColumnText,
  toStoredJson,
  type PgType,
} from '../../src/cloud/type-mapping.js';
import { affinityOf } from '../../src/protocol/schema.js';
import { sameValue, type SqlValue } from '../../src/protocol/values.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const sqlValue: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.constant(null),
  fc.bigInt({ min: INT64_MIN, max: INT64_MAX }),
  fc.constantFrom(INT64_MIN, INT64_MAX, 0n, -1n, 2n ** 53n + 1n),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(-0, 0, 5e-324, -5e-324, Number.MAX_VALUE, -Number.MAX_VALUE, 0.1, 1.5, 1e21, 1e-7, 2 ** 53),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('', 'a\u0000b', '\ud800', 'x\udc00y', 'NULL', '{"a",}', '\\x00', "'; DROP TABLE devices; --"),
  fc.uint8Array({ maxLength: 64 }),
);

/** What PostgreSQL does with the text: cast it in, print it out (canonical forms only differ for doubles). */
function throughColumn(value: SqlValue, type: PgType): SqlValue {
  const text = toColumnText(value, type);
  if (text === OVERFLOW) return fromStoredJson(JSON.parse(JSON.stringify(toStoredJson(value))));
  return fromColumnText(text, type);
}

describe('pgTypeFor', () => {
  test('maps each affinity; BLOB with no declared type becomes jsonb', () => {
    const cases: [string, PgType][] = [
      ['INTEGER', 'bigint'],
      ['BIGINT', 'bigint'],
      ['REAL', 'double precision'],
      ['DOUBLE', 'double precision'],
      ['TEXT', 'text'],
      ['VARCHAR(20)', 'text'],
      ['NUMERIC', 'numeric'],
      ['DECIMAL(10,2)', 'numeric'],
      ['BOOLEAN', 'numeric'],
      ['BLOB', 'bytea'],
      ['', 'jsonb'],
    ];
    for (const [declared, expected] of cases) assert.equal(pgTypeFor({ declared_type: declared, affinity: affinityOf(declared) }), expected, declared);
  });
});

describe('value ↔ column text', () => {
  test('every value survives every column type exactly, natively or through overflow (property)', () => {
    fc.assert(
      fc.property(sqlValue, fc.constantFrom(...PG_TYPES), (value, type) => {
        const back = throughColumn(value, type);
        assert.ok(sameValue(back, value), `${String(value)} through ${type} came back as ${String(back)}`);
      }),
      { numRuns: 2000 },
    );
  });

  test('each column type holds its own storage class natively', () => {
    fc.assert(
      fc.property(sqlValue, (value) => {
        if (typeof value === 'bigint') {
          assert.notEqual(toColumnText(value, 'bigint'), OVERFLOW);
          assert.notEqual(toColumnText(value, 'numeric'), OVERFLOW);
        }
        if (typeof value === 'number') assert.notEqual(toColumnText(value, 'double precision'), OVERFLOW);
        if (typeof value === 'string' && pgSafeText(value)) assert.equal(toColumnText(value, 'text'), value);
        if (value instanceof Uint8Array) assert.notEqual(toColumnText(value, 'bytea'), OVERFLOW);
        assert.notEqual(toColumnText(value, 'jsonb'), OVERFLOW);
      }),
    );
  });

  test('values a column cannot hold exactly overflow', () => {
    const cases: [SqlValue, PgType][] = [
      ['abc', 'bigint'],
      [1.5, 'bigint'],
      [2.0, 'bigint'],
      [7n, 'double precision'],
      [1n, 'text'],
      ['a\u0000b', 'text'],
      ['\ud800', 'text'],
      ['1.5', 'numeric'],
      [2.0, 'numeric'],
      [1e-7, 'numeric'],
      [-0, 'numeric'],
      [new Uint8Array([1]), 'numeric'],
      ['00ff', 'bytea'],
      [1n, 'bytea'],
    ];
    for (const [value, type] of cases) assert.equal(toColumnText(value, type), OVERFLOW, `${String(value)} in ${type}`);
  });

  test('exact text forms', () => {
    assert.equal(toColumnText(-0, 'double precision'), '-0');
    assert.ok(Object.is(fromColumnText('-0', 'double precision'), -0));
    assert.equal(toColumnText(INT64_MIN, 'bigint'), '-9223372036854775808');
    assert.equal(toColumnText(5e-324, 'double precision'), '5e-324');
    assert.equal(toColumnText(1.5, 'numeric'), '1.5');
    assert.equal(fromColumnText('1.5', 'numeric'), 1.5);
    assert.equal(fromColumnText('12', 'numeric'), 12n);
    assert.equal(toColumnText(new Uint8Array([0, 255]), 'bytea'), '00ff');
    assert.equal(toColumnText(2n ** 60n, 'jsonb'), '{"$int":"1152921504606846976"}');
    assert.equal(toColumnText(null, 'bigint'), null);
  });

  test('stored JSON never holds what jsonb refuses (NUL, lone surrogates)', () => {
    fc.assert(
      fc.property(sqlValue, (value) => {
        const json = JSON.stringify(toStoredJson(value));
        assert.ok(!json.includes('\\u0000'));
        assert.ok(!/\\ud[89a-f][0-9a-f]{2}/i.test(json));
      }),
    );
  });

  test('malformed column text is refused, not guessed', () => {
    for (const [text, type] of [['1.5', 'bigint'], ['abc', 'double precision'], ['1e5', 'numeric'], ['0g', 'bytea'], ['{', 'jsonb']] as [string, PgType][]) {
      assert.throws(() => fromColumnText(text, type), /invalid|not a/);
    }
  });
});
