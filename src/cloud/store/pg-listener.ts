import pg from 'pg';
import type { Logger } from 'pino';
import { backoffDelay } from '../../protocol/backoff.js';
import { quoteIdent } from '../identifiers.js';

export interface ListenHandlers {
  onMessage(payload: string): void;
  /** Called when the connection is lost: notifications are missed until onReconnect. */
  onLost?(): void;
  /** Called after the connection came back: notifications sent meanwhile are lost, so listeners should catch up. */
  onReconnect?(): void;
}

/**
 * LISTEN on a connection of its own (a pooled connection cannot hold a LISTEN),
 * reconnecting with backoff when PostgreSQL goes away. Notifications are hints:
 * whoever listens must also catch up on reconnect, which onReconnect says.
 */
export class PgListener {
  readonly #url: string;
  readonly #channel: string;
  readonly #handlers: ListenHandlers;
  readonly #log: Logger | undefined;
  #client: pg.Client | undefined;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;
  #attempt = 0;

  private constructor(url: string, channel: string, handlers: ListenHandlers, logger?: Logger) {
    this.#url = url;
    this.#channel = channel;
    this.#handlers = handlers;
    this.#log = logger;
  }

  static async start(url: string, channel: string, handlers: ListenHandlers, logger?: Logger): Promise<PgListener> {
    const listener = new PgListener(url, channel, handlers, logger);
    await listener.#connect();
    return listener;
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#url });
    client.on('notification', (message) => {
      if (message.channel === this.#channel) this.#handlers.onMessage(message.payload ?? '');
    });
    const lost = (error?: Error) => {
      if (this.#client !== client) return;
      this.#client = undefined;
      client.end().catch(() => {});
      if (this.#stopped) return;
      this.#handlers.onLost?.();
      this.#log?.warn({ err: error, channel: this.#channel }, 'LISTEN connection lost; reconnecting');
      this.#schedule();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect();
    await client.query(`LISTEN ${quoteIdent(this.#channel)}`);
    this.#client = client;
    this.#attempt = 0;
  }

  #schedule(): void {
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#connect().then(
        () => this.#handlers.onReconnect?.(),
        (error: unknown) => {
          if (this.#stopped) return;
          this.#log?.warn({ err: error, channel: this.#channel }, 'LISTEN reconnect failed');
          this.#attempt++;
          this.#schedule();
        },
      );
    }, backoffDelay(this.#attempt, 100, 5000));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}
