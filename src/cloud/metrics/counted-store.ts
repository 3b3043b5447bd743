import { isSynclineError } from '../../protocol/errors.js';
import { sqlState, type Queryable, type Store } from '../store/store.js';
import { countStoreError } from './instruments.js';

/** Counts a failed statement: database errors by SQLSTATE, and connection faults; Syncline's own refusals are not store errors. */
function counted<T>(run: Promise<T>): Promise<T> {
  return run.catch((error: unknown) => {
    if (!isSynclineError(error)) countStoreError(sqlState(error));
    throw error;
  });
}

function countedQueryable(inner: Queryable): Queryable {
  return {
    query: (sql, params) => counted(inner.query(sql, params)),
    exec: (sql) => counted(inner.exec(sql)),
    copyIn: (target, data) => counted(inner.copyIn(target, data)),
  };
}

/** The same store, with every failed statement (inside transactions too) counted in syncline_store_errors_total. */
export function countStoreErrors(store: Store): Store {
  const outer = countedQueryable(store);
  return {
    kind: store.kind,
    query: outer.query,
    exec: outer.exec,
    copyIn: outer.copyIn,
    transaction: (fn) => store.transaction((tx) => fn(countedQueryable(tx))),
    ping: () => store.ping(),
    listen: (channel, handlers) => store.listen(channel, handlers),
    close: () => store.close(),
    ...(store.poolStats ? { poolStats: () => store.poolStats!() } : {}),
  };
}
