interface Job {
  readonly key: string;
  readonly run: () => Promise<void>;
}

/**
 * Runs async jobs with bounded concurrency, one at a time per key: a device's
 * messages are handled in the order they arrived (so its answers come back in
 * that order too) while different devices run side by side. `push` returns a
 * promise only when the backlog is full; it settles when there is room again,
 * so a caller that can hold its source (an MQTT client not reading its socket)
 * applies backpressure.
 */
export class WorkQueue {
  readonly #maxActive: number;
  readonly #maxQueued: number;
  readonly #jobs: Job[] = [];
  readonly #busyKeys = new Set<string>();
  #roomWaiters: (() => void)[] = [];
  #idleWaiters: (() => void)[] = [];

  constructor(maxActive: number, maxQueued: number) {
    this.#maxActive = Math.max(1, maxActive);
    this.#maxQueued = Math.max(1, maxQueued);
  }

  get size(): number {
    return this.#jobs.length + this.#busyKeys.size;
  }

  push(key: string, run: () => Promise<void>): Promise<void> | undefined {
    this.#jobs.push({ key, run });
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
    for (let i = 0; i < this.#jobs.length && this.#busyKeys.size < this.#maxActive; ) {
      const job = this.#jobs[i]!;
      if (this.#busyKeys.has(job.key)) {
        i += 1;
        continue;
      }
      this.#jobs.splice(i, 1);
      this.#busyKeys.add(job.key);
      // Jobs handle their own errors; this only keeps a stray rejection from going unhandled.
      void job
        .run()
        .catch(() => {})
        .finally(() => {
          this.#busyKeys.delete(job.key);
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
