import { SynclineError } from '../../protocol/errors.js';

/**
 * What a browser bundle gets in place of the better-sqlite3 adapter (the
 * package.json "browser" field maps one to the other): a page has no SQLite
 * files, so opening one by path says what to do instead of failing deep inside
 * a Node module that cannot load.
 */
export const BetterSqlite3Driver = {
  open(path: string): never {
    throw new SynclineError('invalid_config', `a browser opens no SQLite file by path (${JSON.stringify(path)}): pass { driver: await OpfsDriver.open({ name }) } instead`, { field: 'path' });
  },
};
