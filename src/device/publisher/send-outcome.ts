import { isTransportError } from '../../transport/transport.js';

/**
 * What the publisher does after a failed send, decided from the error alone:
 * - retry: the same batch (same batch_id) again after a backoff; nothing is dropped
 * - fatal: stop the publisher (bad credential, or a failure that retrying cannot fix)
 * - rotate: the cloud follows a newer journal epoch; start a new one and resend
 * - split: the body was too large; send each half
 * - bisect: a row-level rejection in a multi-row batch; halve until the bad rows are alone
 * - quarantine: keep the batch aside with the reason and move past it
 */
export type SendOutcome = 'retry' | 'fatal' | 'rotate' | 'split' | 'bisect' | 'quarantine';

/** Rejections caused by one row's values: the other rows of the batch deserve to get through. */
const ROW_LEVEL_CODES = new Set(['invalid_number_encoding', 'invalid_value_encoding', 'row_shape_mismatch']);

export function classifySendError(error: unknown, rows: number): SendOutcome {
  if (!isTransportError(error)) return 'retry';
  const { status, code } = error;
  if (status === 401 || status === 403) return 'fatal';
  if (status === 409 && code === 'stale_epoch') return 'rotate';
  if (status === 413) return rows > 1 ? 'split' : 'quarantine';
  if (error.retryable) return 'retry';
  if (status !== undefined && status >= 400 && status < 500) {
    return rows > 1 && code !== undefined && ROW_LEVEL_CODES.has(code) ? 'bisect' : 'quarantine';
  }
  return 'fatal';
}
