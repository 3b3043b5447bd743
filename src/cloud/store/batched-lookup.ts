/** Most keys in one statement: a statement's parameters stay small, and a slow one holds few callers. */
const MAX_KEYS = 1000;

interface Waiter<V> {
  resolve(value: V | undefined): void;
  reject(error: unknown): void;
}

/**
 * Coalesces the lookups that arrive within one turn of the event loop into one
 * statement (`load` of all their keys). Under a fleet's load hundreds of
 * requests ask for their own device or controls at once; each asking alone
 * costs a round trip to the database and its parse and plan, which was most of
 * the per-request work of a small batch. A lookup sees the database as of its
 * statement, as it did alone; a failed statement fails every lookup in it.
 */
export class BatchedLookup<V> {
  readonly #load: (keys: string[]) => Promise<Map<string, V>>;
  #pending = new Map<string, Waiter<V>[]>();
  #scheduled = false;

  constructor(load: (keys: string[]) => Promise<Map<string, V>>) {
    this.#load = load;
  }

  get(key: string): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const waiting = this.#pending.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.#pending.set(key, [{ resolve, reject }]);
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    const batch = [...this.#pending];
    this.#pending = new Map();
    const chunks: [string, Waiter<V>[]][][] = [];
    for (let i = 0; i < batch.length; i += MAX_KEYS) chunks.push(batch.slice(i, i + MAX_KEYS));
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const found = await this.#load(chunk.map(([key]) => key));
          for (const [key, waiters] of chunk) for (const w of waiters) w.resolve(found.get(key));
        } catch (error) {
          for (const [, waiters] of chunk) for (const w of waiters) w.reject(error);
        }
      }),
    );
  }
}
