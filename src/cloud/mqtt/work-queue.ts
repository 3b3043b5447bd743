/**
 * Runs async jobs with bounded concurrency. `push` returns a promise only when the
 * backlog is full; it settles when there is room again, so a caller that can
 * hold its source (an MQTT client not reading its socket) applies backpressure.
 */
export class WorkQueue {
  readonly #maxActive: number;
  readonly #maxQueued: number;
  readonly #jobs: (() => Promise<void>)[] = [];
  #active = 0;
  #roomWaiters: (() => void)[] = [];
  #idleWaiters: (() => void)[] = [];

  constructor(maxActive: number, maxQueued: number) {
    this.#maxActive = Math.max(1, maxActive);
    this.#maxQueued = Math.max(1, maxQueued);
  }

  get size(): number {
    return this.#jobs.length + this.#active;
  }

  push(job: () => Promise<void>): Promise<void> | undefined {
    this.#jobs.push(job);
    this.#pump();
    if (this.#jobs.length < this.#maxQueued) return undefined;
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    while (this.#active < this.#maxActive && this.#jobs.length > 0) {
      const job = this.#jobs.shift()!;
      this.#active += 1;
      // Jobs handle their own errors; this only keeps a stray rejection from going unhandled.
      void job()
        .catch(() => {})
        .finally(() => {
          this.#active -= 1;
          this.#pump();
          this.#release();
        });
    }
  }

  #release(): void {
    if (this.#jobs.length < this.#maxQueued) for (const resolve of this.#roomWaiters.splice(0)) resolve();
    if (this.size === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}
