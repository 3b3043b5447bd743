import { PublisherDefaults } from '../../protocol/constants.js';

export interface PublisherOptions {
  maxBatchBytes: number;
  maxBatchRows: number;
  flushIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Batches of different tables in flight at once; one table never has more than one. */
  maxInFlight: number;
  /** Failed attempts of one batch before the publisher gives up; Infinity keeps a running agent trying forever. */
  maxAttempts: number;
}

export const DEFAULT_MAX_IN_FLIGHT = 4;
/** In `once` mode an unreachable server must end the run, not hang it. */
export const ONCE_MAX_ATTEMPTS = 8;

export function publisherOptions(partial: Partial<PublisherOptions> = {}, once = false): PublisherOptions {
  return {
    maxBatchBytes: partial.maxBatchBytes ?? PublisherDefaults.maxBatchBytes,
    maxBatchRows: partial.maxBatchRows ?? PublisherDefaults.maxBatchRows,
    flushIntervalMs: partial.flushIntervalMs ?? PublisherDefaults.flushIntervalMs,
    retryBaseMs: partial.retryBaseMs ?? PublisherDefaults.retryBaseMs,
    retryMaxMs: partial.retryMaxMs ?? PublisherDefaults.retryMaxMs,
    maxInFlight: partial.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
    maxAttempts: partial.maxAttempts ?? (once ? ONCE_MAX_ATTEMPTS : Infinity),
  };
}

export interface PublisherStats {
  batchesAcked: number;
  rowsAcked: number;
  batchesQuarantined: number;
  retries: number;
  epochRotations: number;
  lastError: string | undefined;
}
