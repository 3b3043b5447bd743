import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { Logger } from 'pino';
import { DeviceLoop } from '../device/device-loop.js';
import { SharedSync, type SyncReport } from '../device/twoway/shared-sync.js';
import { SynclineError } from '../protocol/errors.js';
import { isTransportError } from '../transport/transport.js';
import { shownUrl } from './agent-transport-options.js';
import { perSecond, progressLine } from './progress.js';
import { untilShutdown } from './shutdown.js';

export interface SharedAgentOptions {
  db: string;
  server: string;
  jwt: string;
  source: string;
  once: boolean;
  onceTimeoutMs: number;
  pollMs: number;
  /** The longest wait between attempts while the server cannot be reached (--retry-max-ms). */
  retryMaxMs: number;
}

/** --once retries at least this often: a person is waiting for it. */
const ONCE_RETRY_MAX_MS = 5000;

/**
 * With --once: syncs, retrying an unreachable server until the deadline, then
 * gives up with one plain line saying where it tried. The retries are the device
 * loop's backoff (one part: a sync that is done once it succeeds).
 */
async function syncOnce(sync: SharedSync, options: SharedAgentOptions, signal: AbortSignal): Promise<SyncReport> {
  const deadline = Date.now() + options.onceTimeoutMs;
  const cap = Math.min(ONCE_RETRY_MAX_MS, options.retryMaxMs);
  let attempts = 0;
  let last: unknown;
  let report: SyncReport | undefined;
  const loop = new DeviceLoop();
  loop.add({
    name: 'two-way',
    retry: {
      baseMs: 250,
      // No wait reaches past the deadline: the last attempt comes at it.
      get maxMs() {
        return Math.max(0, Math.min(cap, deadline - Date.now() - 100));
      },
      minMs: 100,
      retryable: (error) => isTransportError(error) && error.retryable && Date.now() < deadline,
      onFailure: () => undefined,
    },
    turn: async () => {
      attempts += 1;
      try {
        report = await sync.sync();
      } catch (error) {
        last = error;
        throw error;
      }
      return { done: true };
    },
  });
  const unreachable = () =>
    new SynclineError('transport_failed', `the server could not be reached within ${Math.round(options.onceTimeoutMs / 1000)} s (tried ${shownUrl(options.server)} ${attempts} times; last error: ${last instanceof Error ? last.message : String(last)})`, {}, { cause: last });
  try {
    await loop.run(signal);
  } catch (error) {
    throw isTransportError(error) && error.retryable ? unreachable() : error;
  }
  // Stopped (SIGINT) while waiting to retry.
  if (!report) throw unreachable();
  return report;
}

/**
 * The device id --jwt and --source name, refusing before any request what the
 * server would refuse: a --jwt that is not a JWT, and a --source that disagrees
 * with the token's sid claim (the server takes the device from the claim).
 */
function checkJwt(jwt: string, source: string): { sid: string | undefined } {
  let claims: Record<string, unknown>;
  try {
    decodeProtectedHeader(jwt);
    claims = decodeJwt(jwt);
  } catch (error) {
    const why = jwt.split('.').length === 3 ? (error as Error).message : `it has ${jwt.split('.').length} part(s), not three`;
    throw new SynclineError('invalid_config', `--jwt is not a JWT (header.payload.signature, base64url): ${why}; pass the token your sign-in issued for this user`, { field: 'jwt' });
  }
  const sid = typeof claims.sid === 'string' && claims.sid !== '' ? claims.sid : undefined;
  if (sid !== undefined && source && source !== sid) {
    throw new SynclineError('invalid_config', `--source ${source} disagrees with the token's sid claim "${sid}", and the server takes the device from the claim; drop --source (or use a token issued for ${source})`, { field: 'source' });
  }
  return { sid };
}

/** What to do about each way the server refuses a JWT (its messages, src/cloud/shared/credentials.ts). */
const JWT_FIXES: [RegExp, string][] = [
  [/expired|not valid yet/, 'get a fresh JWT from your sign-in (and check this machine\'s clock)'],
  [/signature|signed by a key|algorithm/, "sign the JWT with the server's SYNCLINE_JWT_SECRET (HS256) or a key of its SYNCLINE_JWKS_URL (RS256, ES256)"],
  [/issuer|audience|claim/, 'issue the JWT with the claims the server expects: sub (the user), sid (this device), and the issuer and audience of its shared config (auth)'],
  [/lives|"exp"/, "issue the JWT with an exp within the server's --jwt-max-lifetime (a day by default)"],
];

/** A 401 from the shared routes is about --jwt: one line with the server's reason and the fix for it. */
function jwtRefusal(error: unknown): unknown {
  if (!isTransportError(error) || error.status !== 401) return error;
  const reason = /401 unauthorized: (.*)$/.exec(error.message)?.[1] ?? error.message;
  const fix = JWT_FIXES.find(([pattern]) => pattern.test(reason))?.[1] ?? 'pass a JWT the server accepts (see --help for its claims)';
  return new SynclineError('unauthorized', `the server refused --jwt: ${reason}; ${fix}`, { field: 'jwt' }, { cause: error });
}

/**
 * On a terminal, a hydration (the first sync of a file, or one after a long time
 * offline) draws its progress; the rate counts from its first chunk, so the time
 * before it (opening, asking for the snapshot) does not dilute it.
 */
function hydrationProgress(db: string): { report(progress: { chunks: number; rows: number }): void; end(): void } {
  const line = progressLine();
  let first = { at: 0, rows: 0 };
  return {
    report({ chunks, rows }) {
      if (chunks === 1) first = { at: Date.now(), rows };
      const rate = chunks > 1 ? `, ${perSecond(rows - first.rows, first.at)} rows/s` : '';
      line?.show(`hydrating ${db}: ${rows} rows in ${chunks} chunk${chunks === 1 ? '' : 's'}${rate}`);
    },
    end: () => line?.end(),
  };
}

/**
 * `syncline agent --shared`: the SDK's sync loop for an app that knows nothing
 * of Syncline. With --once it syncs until nothing is pending and exits.
 */
export async function runSharedAgent(options: SharedAgentOptions, logger: Logger): Promise<number> {
  if (!options.server) throw new SynclineError('invalid_config', '--shared needs --server (SYNCLINE_SERVER)', { field: 'server' });
  if (!options.jwt) throw new SynclineError('invalid_config', '--shared needs --jwt (SYNCLINE_JWT)', { field: 'jwt' });
  const { sid } = checkJwt(options.jwt, options.source);
  const hydration = hydrationProgress(options.db);
  const source = sid ?? options.source;
  const sync = await SharedSync.open({ path: options.db, serverUrl: options.server, token: options.jwt, ...(source ? { source } : {}), logger, onHydrationProgress: hydration.report }).catch((error: unknown) => {
    throw jwtRefusal(error);
  });
  if (sync.replacedSource !== undefined) {
    process.stderr.write(`syncline: note: ${options.db} kept the source id ${sync.replacedSource}; this device is ${sync.source} (${sid ? "the token's sid claim" : '--source'}), which it uses from now on.\n`);
  }
  const shutdown = untilShutdown();
  try {
    if (options.once) {
      const report = await syncOnce(sync, options, shutdown.signal).finally(hydration.end);
      process.stdout.write(`${JSON.stringify({ ...report, source: sync.source, pending: await sync.pending(), watermark: sync.watermark.toString(), conflicts: (await sync.conflicts()).length })}\n`);
      return (await sync.pending()) === 0 ? 0 : 1;
    }
    sync.onChange((event) => {
      if (event.cause === 'hydrate') hydration.end();
      logger.info({ cause: event.cause, tables: event.tables, full: event.full }, 'remote changes applied');
    });
    sync.start({ pollMs: options.pollMs, retryMaxMs: options.retryMaxMs });
    logger.info({ db: options.db, source: sync.source, tables: sync.tables.map((t) => t.name) }, 'shared sync running');
    await shutdown.done;
    return 0;
  } catch (error) {
    throw jwtRefusal(error);
  } finally {
    hydration.end();
    await sync.close();
  }
}
