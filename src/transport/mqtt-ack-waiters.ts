import type { ReceivedBatchAck } from '../protocol/control.js';
import { TransportError } from './transport.js';

interface Waiter {
  resolve: (ack: ReceivedBatchAck) => void;
  reject: (error: TransportError) => void;
}

/**
 * Batches published over MQTT that wait for the cloud's application-level
 * answer, and the window that bounds how many may wait at once. The broker's
 * PUBACK only says the broker has the message; only this answer lets the device
 * prune, so a broker that loses a message costs a resend, never data.
 */
export class AckWaiters {
  readonly #window: number;
  readonly #waiters = new Map<string, Waiter>();
  #slotsTaken = 0;
  #slotQueue: (() => void)[] = [];

  constructor(window: number) {
    this.#window = Math.max(1, window);
  }

  get inFlight(): number {
    return this.#slotsTaken;
  }

  /** Waits for a free slot in the window; call `release` when the batch is answered or given up. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#slotsTaken >= this.#window) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.#slotQueue = this.#slotQueue.filter((r) => r !== grant);
          reject(new TransportError('aborted while waiting for an in-flight slot', { retryable: true }));
        };
        const grant = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        this.#slotQueue.push(grant);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.#slotsTaken += 1;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#slotQueue.shift();
      if (next) next();
      else this.#slotsTaken -= 1;
    };
  }

  /** Registers interest in the answer for `batchId` before the batch is published. */
  wait(batchId: string, timeoutMs: number, signal?: AbortSignal, onTimeout?: () => void): Promise<ReceivedBatchAck> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.#waiters.get(batchId) === waiter) this.#waiters.delete(batchId);
      };
      const waiter: Waiter = {
        resolve: (ack) => {
          done();
          resolve(ack);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        onTimeout?.();
        waiter.reject(new TransportError(`no answer from the cloud for batch ${batchId} within ${timeoutMs} ms`, { retryable: true }));
      }, timeoutMs);
      const onAbort = () => waiter.reject(new TransportError('aborted', { retryable: true }));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.get(batchId)?.reject(new TransportError(`batch ${batchId} was sent again`, { retryable: true }));
      this.#waiters.set(batchId, waiter);
    });
  }

  /** A duplicate or late answer finds no waiter and is ignored. */
  resolve(ack: ReceivedBatchAck): void {
    this.#waiters.get(ack.batch_id)?.resolve(ack);
  }

  reject(batchId: string, error: TransportError): void {
    this.#waiters.get(batchId)?.reject(error);
  }

  /** The connection dropped or failed for good: every waiting batch fails with `error` (retryable ones are resent). */
  rejectAll(error: TransportError): void {
    for (const waiter of [...this.#waiters.values()]) waiter.reject(error);
  }
}
