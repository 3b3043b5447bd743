import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SynclineError } from '../../src/protocol/errors.js';
import { isConnectionError, withConnectionRetry } from '../../src/cloud/store/connection-retry.js';

const fast = { attempts: 3, baseMs: 1, maxMs: 2 };
const pgError = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test('connection-class errors are told apart from statement errors', () => {
  for (const e of [pgError('57P01'), pgError('08006'), pgError('08001'), pgError('57P03'), pgError('ECONNREFUSED'), pgError('ECONNRESET'), new Error('Connection terminated unexpectedly'), new Error('Client has encountered a connection error and is not queryable'), new Error('timeout exceeded when trying to connect')]) {
    assert.equal(isConnectionError(e), true, e.message + (e as { code?: string }).code);
  }
  for (const e of [pgError('23505'), pgError('40001'), pgError('22003', 'Connection terminated'), new Error('syntax'), 'Connection terminated', null]) {
    assert.equal(isConnectionError(e), false, String(e));
  }
});

test('a lost connection is retried on a fresh one; anything else is thrown at once', async () => {
  let calls = 0;
  assert.equal(await withConnectionRetry(async () => (++calls < 3 ? Promise.reject(pgError('57P01')) : 'done'), fast), 'done');
  assert.equal(calls, 3);
  calls = 0;
  await assert.rejects(withConnectionRetry(async () => {
    calls += 1;
    throw pgError('23505');
  }, fast), (e: unknown) => (e as { code?: string }).code === '23505');
  assert.equal(calls, 1, 'a statement error is not retried');
});

test('when the tries run out the caller gets unavailable (503), with the cause', async () => {
  let calls = 0;
  await assert.rejects(withConnectionRetry(async () => {
    calls += 1;
    throw pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432');
  }, fast), (e: unknown) => e instanceof SynclineError && e.code === 'unavailable' && e.status === 503 && /database is unreachable: connect ECONNREFUSED/.test(e.message));
  assert.equal(calls, 3);
});
