import type { Logger } from 'pino';
import { SharedSync } from '../device/shared/shared-sync.js';
import { SynclineError } from '../protocol/errors.js';
import { untilShutdown } from './shutdown.js';

export interface SharedAgentOptions {
  db: string;
  server: string;
  jwt: string;
  source: string;
  once: boolean;
  pollMs: number;
}

/**
 * `syncline agent --shared`: the SDK's sync loop for an app that knows nothing
 * of Syncline. With --once it syncs until nothing is pending and exits.
 */
export async function runSharedAgent(options: SharedAgentOptions, logger: Logger): Promise<number> {
  if (!options.server) throw new SynclineError('invalid_config', '--shared needs --server (SYNCLINE_SERVER)', { field: 'server' });
  if (!options.jwt) throw new SynclineError('invalid_config', '--shared needs --jwt (SYNCLINE_JWT)', { field: 'jwt' });
  const sync = await SharedSync.open({ path: options.db, serverUrl: options.server, token: options.jwt, ...(options.source ? { source: options.source } : {}), logger });
  try {
    if (options.once) {
      const report = await sync.sync();
      process.stdout.write(`${JSON.stringify({ ...report, pending: sync.pending(), watermark: sync.watermark.toString(), conflicts: sync.conflicts().length })}\n`);
      return sync.pending() === 0 ? 0 : 1;
    }
    const shutdown = untilShutdown();
    sync.onChange((event) => logger.info({ cause: event.cause, tables: event.tables, full: event.full }, 'remote changes applied'));
    sync.start({ pollMs: options.pollMs });
    logger.info({ db: options.db, source: sync.source, tables: sync.tables.map((t) => t.name) }, 'shared sync running');
    await shutdown.done;
    return 0;
  } finally {
    await sync.close();
  }
}
