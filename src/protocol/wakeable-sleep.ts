/**
 * Time as a background loop sees it: what time it is, and a timer. Passed in
 * (zero's RunningState style) so tests drive time with a fake clock instead of
 * waiting real milliseconds.
 */
export interface Clock {
  /** Milliseconds on the clock's own scale; deadlines given to sleepUntil are on it. */
  now(): number;
  /** Calls `fn` once after `ms`; returns the function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/**
 * The one idle wait of every background loop (device and cloud): it sleeps
 * until a deadline, until its signal aborts, or until someone calls `wake()`
 * because work may have arrived (a WAL change hint, a server event, a settled
 * delivery), so work is picked up at once instead of on the next poll.
 *
 * A wake that comes while nobody sleeps is kept: the next sleep returns at
 * once. A loop that was busy when the hint came thus looks again instead of
 * missing it, without a flag of its own. Several wakes before a sleep count as one.
 * Lives in protocol because cloud workers and the device's loops (Node or
 * browser) share it.
 */
export class WakeableSleep {
  readonly clock: Clock;
  #woken = false;
  #wake: (() => void) | undefined;

  constructor(clock: Clock = systemClock) {
    this.clock = clock;
  }

  /** Resolves true when woken (now, or by a wake kept from before), false after `ms` or when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve(true);
    }
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        cancel();
        signal?.removeEventListener('abort', aborted);
        if (this.#wake === wake) this.#wake = undefined;
        resolve(woken);
      };
      const wake = () => done(true);
      const aborted = () => done(false);
      const cancel = this.clock.setTimer(() => done(false), Math.max(0, ms));
      signal?.addEventListener('abort', aborted, { once: true });
      this.#wake = wake;
    });
  }

  /** sleep() until the clock reads `at` (at once when that is past). */
  sleepUntil(at: number, signal?: AbortSignal): Promise<boolean> {
    return this.sleep(at - this.clock.now(), signal);
  }

  /** Ends the sleep in progress, or the next one when none is. */
  wake(): void {
    const wake = this.#wake;
    if (wake) wake();
    else this.#woken = true;
  }
}
