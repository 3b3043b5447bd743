import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromBase64, sameBytes, toBase64 } from '../../src/protocol/base64.js';
import { sha256Hex } from '../../src/protocol/sha256.js';
import { schemaFingerprint } from '../../src/protocol/schema.js';
import { sharedWakeTopic } from '../../src/protocol/topics.js';

// The protocol's own codecs replace node:crypto and Buffer so it runs in browsers;
// Node's implementations are the oracle that the wire format did not move.
describe('browser-safe protocol codecs', () => {
  test('base64 matches Buffer for any bytes, and decodes back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = toBase64(bytes);
        assert.equal(text, Buffer.from(bytes).toString('base64'));
        assert.deepEqual(fromBase64(text), new Uint8Array(bytes));
      }),
      { numRuns: 500 },
    );
    const slice = new Uint8Array([9, 1, 2, 3, 4, 9]).subarray(1, 5);
    assert.equal(toBase64(slice), 'AQIDBA==');
  });

  test('sameBytes compares content and length', () => {
    assert.equal(sameBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
    assert.equal(sameBytes(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
    assert.equal(sameBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])), false);
  });

  test('sha256Hex matches node:crypto for any text, including astral and lone surrogates', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' })), (text) => {
        assert.equal(sha256Hex(text), createHash('sha256').update(text).digest('hex'));
      }),
      { numRuns: 300 },
    );
  });

  test('the schema fingerprint and the wake topic keep their values', () => {
    const columns = [
      { name: 'id', declared_type: 'TEXT', affinity: 'TEXT' as const, pk: 1, notnull: true, has_default: false },
      { name: 'done', declared_type: 'INTEGER', affinity: 'INTEGER' as const, pk: 0, notnull: false, has_default: true },
    ];
    const canonical = JSON.stringify([
      { affinity: 'INTEGER', name: 'done', notnull: false, pk: 0 },
      { affinity: 'TEXT', name: 'id', notnull: true, pk: 1 },
    ]);
    assert.equal(schemaFingerprint(columns), createHash('sha256').update(canonical).digest('hex'));
    assert.equal(sharedWakeTopic('user-1'), `syncline/shared/${createHash('sha256').update('user-1').digest('hex').slice(0, 32)}/bundles`);
  });
});
