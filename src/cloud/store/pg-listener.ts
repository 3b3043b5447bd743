import pg from 'pg';
import type { Logger } from 'pino';
import { backoffDelay } from '../../protocol/backoff.js';
import { SynclineError } from '../../protocol/errors.js';
import { quoteIdent } from '../identifiers.js';

export interface ListenHandlers {
  onMessage(payload: string): void;
  /** The channel is listened: once at first, and again after every reconnect (notifications sent meanwhile were missed, so catch up). */
  onListening?(): void;
  /** The connection is lost, or an attempt to listen failed (again while attempts fail): notifications are missed until onListening. */
  onLost?(): void;
}

/** How the listening connection names itself in pg_stat_activity, so an operator (or a test) can tell it from the pool's. */
export const LISTEN_APPLICATION_NAME = 'syncline listen';

/**
 * Every channel a store listens on, over ONE connection of its own (a pooled
 * connection cannot hold a LISTEN), so a server process holds one listening
 * connection however many parts of it listen. When the connection is lost, or
 * cannot be made, it is tried again with the project's backoff and every
 * channel is LISTENed again; each subscriber is told onLost, then onListening.
 * Notifications are hints: whoever listens catches up on onListening.
 * Subscribing, unsubscribing and connecting run one at a time, so a channel is
 * never LISTENed twice or left out of a reconnect.
 */
export class PgListener {
  readonly #url: string;
  readonly #log: Logger | undefined;
  readonly #connectTimeoutMs: number;
  readonly #subscribers = new Map<string, Set<ListenHandlers>>();
  /** The connection, once every channel of #subscribers at the time is LISTENed on it. */
  #client: pg.Client | undefined;
  /** The channels LISTENed on #client. */
  readonly #listened = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();
  #retry: NodeJS.Timeout | undefined;
  #attempt = 0;
  #stopped = false;

  constructor(url: string, options: { logger?: Logger; connectTimeoutMs: number }) {
    this.#url = url;
    this.#log = options.logger;
    this.#connectTimeoutMs = options.connectTimeoutMs;
  }

  /**
   * Resolves once `channel` is listened, or once the attempt to listen failed
   * (onLost was called, and onListening follows when a retry succeeds). The
   * returned function unsubscribes.
   */
  async subscribe(channel: string, handlers: ListenHandlers): Promise<() => Promise<void>> {
    await this.#serial(async () => {
      if (this.#stopped) throw new SynclineError('unavailable', 'the store is closed: nothing more can listen on it', { channel });
      let set = this.#subscribers.get(channel);
      if (!set) this.#subscribers.set(channel, (set = new Set()));
      set.add(handlers);
      const client = this.#client;
      if (client) {
        if (!this.#listened.has(channel)) {
          try {
            await client.query(`LISTEN ${quoteIdent(channel)}`);
          } catch (error) {
            // Every subscriber, this one included, is told onLost and a retry is scheduled.
            this.#lost(client, error);
            return;
          }
          this.#listened.add(channel);
        }
        handlers.onListening?.();
      } else if (this.#retry) {
        // Down, a retry already scheduled: it LISTENs this channel too and says so.
        handlers.onLost?.();
      } else {
        await this.#connect();
      }
    });
    let subscribed = true;
    return () => {
      if (!subscribed) return Promise.resolve();
      subscribed = false;
      return this.#serial(() => this.#unsubscribe(channel, handlers));
    };
  }

  async #unsubscribe(channel: string, handlers: ListenHandlers): Promise<void> {
    const set = this.#subscribers.get(channel);
    set?.delete(handlers);
    if (!set || set.size > 0) return;
    this.#subscribers.delete(channel);
    if (this.#subscribers.size === 0) {
      // Nobody listens: the connection and its retries go.
      clearTimeout(this.#retry);
      this.#retry = undefined;
      await this.#end();
      return;
    }
    const client = this.#client;
    if (!client || !this.#listened.delete(channel)) return;
    // A failure here is the connection's loss, which its own events report.
    await client.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
  }

  /** One attempt: connects, LISTENs every channel, and tells every subscriber how it went. */
  async #connect(): Promise<void> {
    if (this.#subscribers.size === 0) return;
    const client = new pg.Client({ connectionString: this.#url, application_name: LISTEN_APPLICATION_NAME, connectionTimeoutMillis: this.#connectTimeoutMs, keepAlive: true });
    client.on('notification', (message) => {
      if (this.#client !== client) return;
      for (const handlers of this.#subscribers.get(message.channel) ?? []) handlers.onMessage(message.payload ?? '');
    });
    // Before #client is set, the statement in flight rejects with the same failure.
    client.on('error', (error) => this.#lost(client, error));
    client.on('end', () => this.#lost(client));
    const listened = new Set<string>();
    try {
      await client.connect();
      for (const channel of this.#subscribers.keys()) {
        await client.query(`LISTEN ${quoteIdent(channel)}`);
        listened.add(channel);
      }
    } catch (error) {
      client.end().catch(() => {});
      this.#log?.warn({ err: error, channels: [...this.#subscribers.keys()] }, 'cannot LISTEN; trying again');
      this.#tell('onLost');
      this.#schedule();
      return;
    }
    this.#client = client;
    for (const channel of listened) this.#listened.add(channel);
    this.#attempt = 0;
    this.#tell('onListening');
  }

  #lost(client: pg.Client, error?: unknown): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    this.#listened.clear();
    client.end().catch(() => {});
    if (this.#stopped) return;
    this.#log?.warn({ err: error, channels: [...this.#subscribers.keys()] }, 'LISTEN connection lost; reconnecting');
    this.#tell('onLost');
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped || this.#retry) return;
    const delay = backoffDelay(this.#attempt, 100, 5000);
    this.#attempt++;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#serial(() => (this.#client || this.#stopped ? Promise.resolve() : this.#connect())).catch(() => {});
    }, delay);
  }

  #tell(event: 'onListening' | 'onLost'): void {
    for (const set of this.#subscribers.values()) for (const handlers of set) handlers[event]?.();
  }

  async #end(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#listened.clear();
    await client?.end().catch(() => {});
  }

  /** Runs `fn` after everything queued before it. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.#serial(() => this.#end());
  }
}
