import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { backoffDelay } from '../../src/protocol/backoff.js';
import { restoredFromBackup } from '../../src/device/journal/epoch-sidecar.js';
import { classifySendError } from '../../src/device/publisher/send-outcome.js';
import { TransportError } from '../../src/transport/transport.js';

const http = (status: number, code?: string, retryable = status >= 500 || status === 429) => new TransportError(`status ${status}`, { status, retryable, ...(code ? { code } : {}) });

describe('publisher decisions', () => {
  test('what happens after each kind of failure', () => {
    assert.equal(classifySendError(new TransportError('down', { retryable: true }), 10), 'retry');
    assert.equal(classifySendError(http(503), 10), 'retry');
    assert.equal(classifySendError(http(429), 10), 'retry');
    assert.equal(classifySendError(new Error('SQLITE_BUSY'), 10), 'retry');
    assert.equal(classifySendError(http(401, 'unauthorized'), 10), 'fatal');
    assert.equal(classifySendError(http(403, 'forbidden'), 10), 'fatal');
    assert.equal(classifySendError(http(409, 'stale_epoch'), 10), 'rotate');
    assert.equal(classifySendError(http(409, 'conflict'), 10), 'quarantine');
    assert.equal(classifySendError(http(413, 'payload_too_large'), 10), 'split');
    assert.equal(classifySendError(http(413, 'payload_too_large'), 1), 'quarantine');
    assert.equal(classifySendError(http(400, 'invalid_number_encoding'), 10), 'bisect');
    assert.equal(classifySendError(http(400, 'invalid_number_encoding'), 1), 'quarantine');
    assert.equal(classifySendError(http(400, 'invalid_batch'), 10), 'quarantine');
    assert.equal(classifySendError(http(404), 10), 'quarantine');
    assert.equal(classifySendError(new TransportError('odd', { retryable: false }), 10), 'fatal');
  });

  test('backoff stays within [0, min(max, base * 2^attempt)) (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 60_000 }), fc.double({ min: 0, max: 0.9999999, noNaN: true }), (attempt, base, max, r) => {
        const delay = backoffDelay(attempt, base, max, () => r);
        assert.ok(delay >= 0 && delay < Math.max(1, Math.min(max, base * 2 ** Math.min(attempt, 30))));
      }),
    );
  });

  test('a file whose cursors are behind the sidecar of the same epoch is a restored backup', () => {
    const epoch = '01900000-0000-7000-8000-000000000002';
    const cursors = new Map([['a', 10], ['b', 5]]);
    const side = (c: Record<string, number>, e = epoch) => ({ epoch: e, cursors: c, updated_at: '' });
    assert.equal(restoredFromBackup({ epoch, cursors }, undefined), undefined);
    assert.equal(restoredFromBackup({ epoch, cursors }, side({ a: 10, b: 5 })), undefined);
    assert.equal(restoredFromBackup({ epoch, cursors }, side({ a: 8 })), undefined, 'the file may be ahead of the sidecar (crash before the sidecar write)');
    assert.match(restoredFromBackup({ epoch, cursors }, side({ a: 11 }))!, /table a/);
    assert.match(restoredFromBackup({ epoch, cursors }, side({ c: 1 }))!, /table c/);
    assert.match(restoredFromBackup({ epoch, cursors }, side({}, '01900000-0000-7000-8000-000000000003'))!, /older/);
    assert.equal(restoredFromBackup({ epoch, cursors }, side({ a: 99 }, '01900000-0000-7000-8000-000000000001')), undefined, 'a newer epoch in the file is a rotation the sidecar missed');
  });
});
