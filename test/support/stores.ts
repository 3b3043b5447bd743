import { after, before, describe } from 'node:test';
import { migrate } from '../../src/cloud/store/migrations.js';
import { openStore } from '../../src/cloud/store/open-store.js';
import { PgliteStore } from '../../src/cloud/store/pglite-store.js';
import type { Store, StoreKind } from '../../src/cloud/store/store.js';
import { migratedTemplate } from './pglite-template.js';
import { createScratchDatabase, realPostgresReachable } from './postgres.js';

/**
 * The cloud stores the tests run against: PGlite always, the real PostgreSQL when
 * it is reachable. Suites written with `describeEachStore` run once per store, so
 * every behaviour is proven on both (as powersync runs one storage suite against
 * every backend).
 */
export const STORE_KINDS: readonly StoreKind[] = ['pglite', 'postgres'];

export const postgresReachable = await realPostgresReachable();

export interface TestStore {
  kind: StoreKind;
  store: Store;
  /** PostgreSQL only: the scratch database's URL, for opening a second store on it. */
  url?: string;
  close(): Promise<void>;
}

/** A migrated store of its own: in-memory PGlite, or a scratch PostgreSQL database dropped on close. */
export async function openTestStore(kind: StoreKind, options: { migrate?: boolean } = {}): Promise<TestStore> {
  if (kind === 'pglite') {
    if (options.migrate === false) {
      const store = await openStore({ migrate: false });
      return { kind, store, close: () => store.close() };
    }
    const store = await PgliteStore.open(undefined, { loadDataDir: await migratedTemplate() });
    await migrate(store, {});
    return { kind, store, close: () => store.close() };
  }
  const scratch = await createScratchDatabase();
  try {
    const store = await openStore({ databaseUrl: scratch.url, migrate: options.migrate });
    return {
      kind,
      store,
      url: scratch.url,
      async close() {
        await store.close();
        await scratch.drop();
      },
    };
  } catch (error) {
    await scratch.drop();
    throw error;
  }
}

export interface StoreContext {
  readonly kind: StoreKind;
  /** The suite's shared store (PGlite takes seconds to boot, so one per suite). */
  readonly store: Store;
}

/**
 * Defines a suite once per store kind, sharing one store across its tests. Tests
 * keep apart by working through a device of their own (lineages, mirrors and
 * ledger rows are all per device).
 */
export function describeEachStore(title: string, define: (context: StoreContext) => void): void {
  for (const kind of STORE_KINDS) {
    const skip = kind === 'postgres' && !postgresReachable ? 'PostgreSQL is not reachable' : false;
    describe(`${title} [${kind}]`, { skip }, () => {
      let handle: TestStore | undefined;
      before(async () => {
        handle = await openTestStore(kind);
      });
      define({
        kind,
        get store(): Store {
          if (!handle) throw new Error('store not open yet');
          return handle.store;
        },
      });
      // Registered after the suite's own hooks, so a server the suite started stops first.
      after(async () => {
        await handle?.close();
      });
    });
  }
}
