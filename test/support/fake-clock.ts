import type { Clock } from '../../src/protocol/wakeable-sleep.js';

/**
 * A Clock that moves only when the test says so: advance(ms) fires, in time
 * order, every timer due by then, letting the promises they settle run in
 * between (so a loop woken by one timer can set the next before time moves on).
 */
export class FakeClock implements Clock {
  #now = 0;
  #timers: { at: number; order: number; fn: () => void }[] = [];
  #order = 0;

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + Math.max(0, ms), order: this.#order++, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }

  /** Timers set and not yet fired or cancelled. */
  get pending(): number {
    return this.#timers.length;
  }

  async advance(ms: number): Promise<void> {
    const until = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (!next) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = next.at;
      next.fn();
      await settle();
    }
    this.#now = until;
  }
}

/** Lets every queued promise reaction run (a few macrotask turns, no time passes on the fake clock). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
