import assert from 'node:assert/strict';
import { isTransportError, type TransportError } from '../../src/transport/transport.js';

/** The TransportError `promise` rejects with; fails the test when it answers or rejects with anything else. */
export async function transportRejection(promise: Promise<unknown>): Promise<TransportError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isTransportError(error), `expected a TransportError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a TransportError, got an answer');
}
