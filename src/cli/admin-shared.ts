import { uninstallCapture } from '../cloud/shared/uninstall.js';
import { openStore } from '../cloud/store/open-store.js';
import { SynclineError } from '../protocol/errors.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { printResult } from './output.js';

export const adminSharedOptions = {
  databaseUrl: { flag: 'database-url', env: 'DATABASE_URL', kind: 'string', description: 'PostgreSQL connection string of the server (instead of PGlite)', secret: true },
  data: { flag: 'data', env: 'SYNCLINE_DATA', kind: 'string', default: './.syncline', description: 'PGlite data directory of the server (when no --database-url)' },
  json: { flag: 'json', kind: 'boolean', default: false, description: 'print JSON for scripts' },
  help: { flag: 'help', kind: 'boolean', default: false, description: 'show this help' },
} satisfies OptionTable;

const USAGE = 'syncline admin shared uninstall [--database-url URL | --data DIR] [--json]';
const SUMMARY = `Removes the triggers and functions two-way sync installed to capture writes to shared tables,
from every table of the database, and the bookkeeping columns (_syncline_key, _syncline_version,
_syncline_source, _syncline_hlc) --provision added to business tables in your own schemas; every row
and every column of yours stays. Tables Syncline created in syncline_shared keep theirs. Stop the servers first:
a server that starts installs capture again. Works on the database directly (no running server needed).`;

export async function runAdminShared(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv[0] !== 'uninstall') {
    process.stdout.write(`${helpText(USAGE, SUMMARY, adminSharedOptions)}\n`);
    if (argv.includes('--help')) return 0;
    if (argv.length > 0) throw new SynclineError('invalid_config', `unknown admin shared subcommand "${argv[0]}" (the one there is: uninstall)`);
    return 2;
  }
  const { options } = parseCommand(adminSharedOptions, argv.slice(1));
  const store = await openStore(options.databaseUrl ? { databaseUrl: options.databaseUrl, migrate: false } : { dataDir: options.data, migrate: false });
  try {
    const result = await uninstallCapture(store);
    printResult(result, options.json, () =>
      result.tables.length === 0 ? 'no capture triggers were installed; nothing to remove' : `capture removed from ${result.tables.length} table(s), data kept:\n  ${result.tables.join('\n  ')}` +
          (result.bookkeeping_removed.length > 0 ? `\nbookkeeping columns dropped from:\n  ${result.bookkeeping_removed.join('\n  ')}` : ''),
    );
    return 0;
  } finally {
    await store.close();
  }
}
