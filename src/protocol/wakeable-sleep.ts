/**
 * The idle wait of a background worker: it sleeps until its poll interval ends,
 * its signal aborts, or someone calls `wake()` because new work arrived (so work
 * is picked up at once instead of on the next poll). A wake with no sleep in
 * progress is not kept: a worker that must not miss one sets its own flag.
 * Lives in protocol because cloud workers and the device's sync loop (Node or
 * browser) share it.
 */
export class WakeableSleep {
  #wake: (() => void) | undefined;

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  wake(): void {
    this.#wake?.();
  }
}
