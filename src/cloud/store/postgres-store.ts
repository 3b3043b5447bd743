import pg from 'pg';
import type { Logger } from 'pino';
import type { PoolStats, Queryable, QueryResult, Store } from './store.js';

/**
 * PostgreSQL through a node-pg pool (DATABASE_URL). node-pg already returns int8
 * and numeric as strings; bytea arrives as a Buffer, which is a Uint8Array.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  static async open(databaseUrl: string, options: { logger?: Logger; maxConnections?: number } = {}): Promise<PostgresStore> {
    // Shortest exact float output regardless of the server's configured default, so
    // doubles read back as text round-trip bit for bit; set at connection start-up
    // rather than by a query racing the pool's first one.
    const pool = new pg.Pool({ connectionString: databaseUrl, max: options.maxConnections ?? 10, options: '-c extra_float_digits=3' });
    // An idle client that loses its server must not crash the process; the next
    // query on the pool simply gets a fresh connection.
    pool.on('error', (error) => options.logger?.warn({ err: error }, 'idle PostgreSQL connection failed'));
    const client = await pool.connect().catch(async (error: unknown) => {
      await pool.end().catch(() => {});
      throw error;
    });
    client.release();
    return new PostgresStore(pool);
  }

  async query<T>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    const result = await this.#pool.query(sql, [...params]);
    return { rows: result.rows as T[] };
  }

  async exec(sql: string): Promise<void> {
    await this.#pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    const queryable: Queryable = {
      async query<R>(sql: string, params: readonly unknown[] = []) {
        const result = await client.query(sql, [...params]);
        return { rows: result.rows as R[] };
      },
      async exec(sql: string) {
        await client.query(sql);
      },
    };
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(queryable);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      // A failed ROLLBACK leaves the connection in an unknown state: drop it.
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  poolStats(): PoolStats {
    return { total: this.#pool.totalCount, idle: this.#pool.idleCount, waiting: this.#pool.waitingCount };
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
