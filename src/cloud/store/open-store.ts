import type { Logger } from 'pino';
import { migrate } from './migrations.js';
import { PgliteStore } from './pglite-store.js';
import { PostgresStore } from './postgres-store.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  /** PostgreSQL connection string; when set, PGlite is not used. */
  databaseUrl?: string;
  /** PGlite data directory; in memory when neither this nor databaseUrl is set. */
  dataDir?: string;
  logger?: Logger;
  /** Apply pending migrations (default true). */
  migrate?: boolean;
}

/** Opens the configured store and brings its schema up to date. */
export async function openStore(options: OpenStoreOptions = {}): Promise<Store> {
  const store: Store = options.databaseUrl
    ? await PostgresStore.open(options.databaseUrl, { logger: options.logger })
    : await PgliteStore.open(options.dataDir);
  if (options.migrate === false) return store;
  try {
    await migrate(store, { logger: options.logger });
  } catch (error) {
    await store.close().catch(() => {});
    throw error;
  }
  return store;
}
