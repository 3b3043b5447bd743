import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeCursor, encodeCursor, parseLimit } from '../../src/cloud/query/mirror-rows.js';
import { SynclineError } from '../../src/protocol/errors.js';

const invalid = (fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof SynclineError && e.code === 'invalid_request');

describe('mirror-rows cursor and limit', () => {
  test('a cursor decodes to the key it encodes (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.string(), (id, name) => {
        const texts = [id.toString(), name];
        assert.deepEqual(decodeCursor(encodeCursor(texts), ['bigint', 'text']), texts);
      }),
    );
  });

  test('a cursor is refused when it does not fit the key', () => {
    invalid(() => decodeCursor('not base64 json', ['bigint']));
    invalid(() => decodeCursor(encodeCursor(['1', '2']), ['bigint']));
    invalid(() => decodeCursor(encodeCursor(['abc']), ['bigint']));
    invalid(() => decodeCursor(Buffer.from('{"a":1}').toString('base64url'), ['bigint']));
    invalid(() => decodeCursor(Buffer.from('[1]').toString('base64url'), ['bigint']));
  });

  test('limit defaults to 50 and is bounded', () => {
    assert.equal(parseLimit(undefined), 50);
    assert.equal(parseLimit('1000'), 1000);
    for (const bad of ['0', '1001', '-1', '1.5', 'x']) invalid(() => parseLimit(bad));
  });
});
