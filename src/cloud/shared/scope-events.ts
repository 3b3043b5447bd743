import type { Logger } from 'pino';
import { BUNDLES_CHANNEL, bundleNotificationSchema, type BundleNotification } from '../../protocol/shared-sync.js';
import type { Store } from '../store/store.js';

/**
 * Tells listeners of a scope that a bundle committed, whoever committed it: a
 * device push or admin bundle on any server process, or a backend transaction
 * captured by the triggers. Every commit NOTIFYs BUNDLES_CHANNEL inside its
 * transaction, so PostgreSQL delivers it at commit to every process listening
 * (PGlite delivers it in-process). A wake-up is a hint: a device that missed one
 * (a lost LISTEN connection) catches up at its next pull, and after a reconnect
 * every listener is woken once so none waits for its poll.
 */
export class ScopeEvents {
  readonly #listeners = new Map<string, Set<(headSeq: string) => void>>();
  readonly #everyScope = new Set<(scope: string, headSeq: string) => void>();
  #unlisten: (() => Promise<void>) | undefined;

  /** Starts receiving the commits of every process on `store`. */
  async listen(store: Store, logger?: Logger): Promise<void> {
    this.#unlisten = await store.listen(BUNDLES_CHANNEL, {
      onMessage: (payload) => {
        const notification = readNotification(payload);
        // Anyone with access to the database can NOTIFY this channel: a payload not ours is logged and skipped, the listener goes on.
        if ('error' in notification) logger?.warn({ err: notification.error, channel: BUNDLES_CHANNEL, payload: payload.slice(0, 200) }, 'ignored an unreadable bundle notification');
        else this.committed(notification.scope, notification.head_seq);
      },
      onListening: () => {
        if (this.#listeners.size === 0) return;
        this.#catchUp(store).catch((error: unknown) => logger?.warn({ err: error }, 'could not catch up after the LISTEN connection came back'));
      },
    });
  }

  /** Wakes every listened scope with its head: commits notified while the connection was down were missed. */
  async #catchUp(store: Store): Promise<void> {
    const { rows } = await store.query<{ scope: string; head_seq: string }>('SELECT scope, head_seq::text AS head_seq FROM sync_scopes WHERE scope = ANY($1::text[])', [[...this.#listeners.keys()]]);
    for (const row of rows) this.committed(row.scope, row.head_seq);
  }

  async stop(): Promise<void> {
    await this.#unlisten?.();
    this.#unlisten = undefined;
  }

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

/** The notification, or why it is not one (not JSON, or JSON of another shape). */
function readNotification(payload: string): BundleNotification | { error: unknown } {
  try {
    return bundleNotificationSchema.parse(JSON.parse(payload));
  } catch (error) {
    return { error };
  }
}
