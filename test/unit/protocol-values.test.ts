import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeValue, encodeValue, sameValue, storageClass } from '../../src/protocol/values.js';
import { SynclineError } from '../../src/protocol/errors.js';
import { sqlValue } from '../support/arbitraries.js';

describe('wire value encoding', () => {
  test('every value survives encode → JSON text → decode with its storage class', () => {
    fc.assert(
      fc.property(sqlValue, (value) => {
        const back = decodeValue(JSON.parse(JSON.stringify(encodeValue(value))));
        assert.equal(storageClass(back), storageClass(value));
        assert.ok(sameValue(back, value), `${String(value)} came back as ${String(back)}`);
      }),
      { numRuns: 2000 },
    );
  });

  test('integers beyond 2^53 travel as strings, never as rounded numbers', () => {
    assert.deepEqual(encodeValue(2n ** 63n - 1n), { $int: '9223372036854775807' });
    assert.equal(encodeValue(42n), 42);
    assert.equal(decodeValue({ $int: '-9223372036854775808' }), -(2n ** 63n));
  });

  test('integral reals and -0.0 are tagged so they stay REAL', () => {
    assert.deepEqual(encodeValue(2), { $real: '2' });
    assert.deepEqual(encodeValue(-0), { $real: '-0' });
    assert.ok(Object.is(decodeValue({ $real: '-0' }), -0));
    assert.equal(encodeValue(1.5), 1.5);
    assert.equal(typeof decodeValue(3), 'bigint');
    assert.equal(typeof decodeValue(3.25), 'number');
  });

  test('NaN and infinities are refused with invalid_number_encoding', () => {
    for (const wire of [{ $real: 'Infinity' }, { $real: '-Infinity' }, { $real: 'NaN' }, { $real: '1e999' }]) {
      assert.throws(() => decodeValue(wire, 'rows.0.row.1'), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_number_encoding' && e.context.field === 'rows.0.row.1');
    }
  });

  test('plain JSON integers outside ±(2^53-1) are refused with invalid_number_encoding naming the field', () => {
    for (const text of ['1e20', '1e300', '-1e19', '9223372036854775807', '9007199254740992', '-9007199254740992', '9007199254740991.5']) {
      assert.throws(
        () => decodeValue(JSON.parse(text), 'rows.0.row.1'),
        (e: unknown) => e instanceof SynclineError && e.code === 'invalid_number_encoding' && e.context.field === 'rows.0.row.1' && /\$int/.test(e.message),
        text,
      );
    }
    assert.equal(decodeValue(JSON.parse('9007199254740991')), 9007199254740991n);
    assert.equal(decodeValue(JSON.parse('-9007199254740991')), -9007199254740991n);
    assert.equal(decodeValue(JSON.parse('1.5e-300')), 1.5e-300);
    assert.equal(decodeValue(JSON.parse('1e2')), 100n);
  });

  test('malformed tagged values are refused with invalid_value_encoding', () => {
    const bad: unknown[] = [
      { $int: '12x' },
      { $int: '99999999999999999999' },
      { $int: 5 },
      { $blob: 'not base64!' },
      { $real: '0x10' },
      { $date: '2020' },
      { $int: '1', $real: '1' },
      [1, 2],
      true,
    ];
    for (const wire of bad) {
      assert.throws(() => decodeValue(wire), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_value_encoding', JSON.stringify(wire));
    }
  });
});
