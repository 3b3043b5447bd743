import { createHash } from 'node:crypto';
import { SynclineError } from '../../protocol/errors.js';
import type { Queryable } from '../store/store.js';

const KEY = /^[\x21-\x7e]{1,200}$/;
/** A lock space of its own, apart from the migration lock and mirror names. */
const IDEMPOTENCY_LOCK_CLASS = 73_666;

export interface IdempotentRequest {
  /** The Idempotency-Key header, if the caller sent one. */
  key: string | undefined;
  /** Who asked: keys are scoped per actor, so two operators cannot collide. */
  actorId: string;
  /** What was asked (route, target, body); a reused key must ask the same. */
  request: unknown;
}

export function checkIdempotencyKey(key: string | undefined): void {
  if (key !== undefined && !KEY.test(key)) {
    throw new SynclineError('invalid_request', 'Idempotency-Key is 1 to 200 visible ASCII characters', { field: 'idempotency-key' });
  }
}

/**
 * Runs an operator action at most once per Idempotency-Key, in the caller's
 * transaction: a retry of the same request gets the first answer again, even
 * after the action changed what it would now answer (an approved review can no
 * longer be approved). Only successes are stored, so a refused request can be
 * retried with the same key once fixed.
 */
export async function idempotent<T>(tx: Queryable, request: IdempotentRequest, action: () => Promise<T>): Promise<T> {
  if (request.key === undefined) return action();
  checkIdempotencyKey(request.key);
  const scoped = `${request.actorId}:${request.key}`;
  const fingerprint = createHash('sha256').update(JSON.stringify(request.request)).digest('hex');
  // Two deliveries of one key wait for each other here, so the second finds the first's answer
  // instead of running the action against the state the first one left.
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [IDEMPOTENCY_LOCK_CLASS, scoped]);
  const { rows } = await tx.query<{ request_hash: string; response: T }>('SELECT request_hash, response FROM admin_idempotency_keys WHERE key = $1', [scoped]);
  const stored = rows[0];
  if (stored) {
    if (stored.request_hash !== fingerprint) throw new SynclineError('idempotency_key_reused', 'this Idempotency-Key was used for a different request', { field: 'idempotency-key' });
    return stored.response;
  }
  const response = await action();
  await tx.query('INSERT INTO admin_idempotency_keys (key, request_hash, status_code, response) VALUES ($1, $2, 200, $3::jsonb)', [scoped, fingerprint, JSON.stringify(response)]);
  return response;
}
