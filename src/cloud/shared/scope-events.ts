/**
 * Tells listeners of a scope that a bundle committed. In-process only: with
 * several servers on one PostgreSQL, a device connected to another server learns
 * of the bundle at its next poll instead (the wake-up is a hint, never a
 * guarantee; pulls always converge without it).
 */
export class ScopeEvents {
  readonly #listeners = new Map<string, Set<(headSeq: string) => void>>();
  readonly #everyScope = new Set<(scope: string, headSeq: string) => void>();

  /** Listens to every scope (the MQTT wake-up publisher). */
  subscribeAll(listener: (scope: string, headSeq: string) => void): () => void {
    this.#everyScope.add(listener);
    return () => this.#everyScope.delete(listener);
  }

  subscribe(scope: string, listener: (headSeq: string) => void): () => void {
    let set = this.#listeners.get(scope);
    if (!set) this.#listeners.set(scope, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(scope);
    };
  }

  committed(scope: string, headSeq: string): void {
    for (const listener of this.#listeners.get(scope) ?? []) listener(headSeq);
    for (const listener of this.#everyScope) listener(scope, headSeq);
  }

  get listenerCount(): number {
    let n = 0;
    for (const set of this.#listeners.values()) n += set.size;
    return n;
  }
}
