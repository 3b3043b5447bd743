import type { Logger } from 'pino';
import { backoffDelay, sleep } from '../protocol/backoff.js';
import { SharedSync, type SyncReport } from '../device/shared/shared-sync.js';
import { SynclineError } from '../protocol/errors.js';
import { isTransportError } from '../transport/transport.js';
import { shownUrl } from './agent-transport-options.js';
import { untilShutdown } from './shutdown.js';

export interface SharedAgentOptions {
  db: string;
  server: string;
  jwt: string;
  source: string;
  once: boolean;
  onceTimeoutMs: number;
  pollMs: number;
}

/**
 * With --once: syncs, retrying an unreachable server until the deadline, then
 * gives up with one plain line saying where it tried.
 */
async function syncOnce(sync: SharedSync, options: SharedAgentOptions, signal: AbortSignal): Promise<SyncReport> {
  const deadline = Date.now() + options.onceTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await sync.sync();
    } catch (error) {
      if (!isTransportError(error) || !error.retryable) throw error;
      const wait = Math.min(backoffDelay(attempt, 250, 5000) + 100, deadline - Date.now());
      if (wait <= 0 || signal.aborted) {
        throw new SynclineError('transport_failed', `the server could not be reached within ${Math.round(options.onceTimeoutMs / 1000)} s (tried ${shownUrl(options.server)} ${attempt} times; last error: ${error.message})`, {}, { cause: error });
      }
      await sleep(wait, signal);
    }
  }
}

/**
 * `syncline agent --shared`: the SDK's sync loop for an app that knows nothing
 * of Syncline. With --once it syncs until nothing is pending and exits.
 */
export async function runSharedAgent(options: SharedAgentOptions, logger: Logger): Promise<number> {
  if (!options.server) throw new SynclineError('invalid_config', '--shared needs --server (SYNCLINE_SERVER)', { field: 'server' });
  if (!options.jwt) throw new SynclineError('invalid_config', '--shared needs --jwt (SYNCLINE_JWT)', { field: 'jwt' });
  const sync = await SharedSync.open({ path: options.db, serverUrl: options.server, token: options.jwt, ...(options.source ? { source: options.source } : {}), logger });
  if (sync.replacedSource !== undefined) {
    process.stderr.write(`syncline: note: ${options.db} kept the source id ${sync.replacedSource}; this device is ${sync.source} (${options.source ? '--source' : "the token's sid claim"}), which it uses from now on.\n`);
  }
  const shutdown = untilShutdown();
  try {
    if (options.once) {
      const report = await syncOnce(sync, options, shutdown.signal);
      process.stdout.write(`${JSON.stringify({ ...report, source: sync.source, pending: sync.pending(), watermark: sync.watermark.toString(), conflicts: sync.conflicts().length })}\n`);
      return sync.pending() === 0 ? 0 : 1;
    }
    sync.onChange((event) => logger.info({ cause: event.cause, tables: event.tables, full: event.full }, 'remote changes applied'));
    sync.start({ pollMs: options.pollMs });
    logger.info({ db: options.db, source: sync.source, tables: sync.tables.map((t) => t.name) }, 'shared sync running');
    await shutdown.done;
    return 0;
  } finally {
    await sync.close();
  }
}
