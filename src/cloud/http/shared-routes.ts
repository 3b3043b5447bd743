import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { Headers } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';
import {
  SHARED_FORMAT_VERSION,
  SOURCE_HEADER,
  SharedDefaults,
  SharedRoutes,
  pushBeginSchema,
  pushChunkSchema,
  wireRowChangeSchema,
  type PushAnswer,
  type SharedConfigAnswer,
} from '../../protocol/shared-sync.js';
import type { BundleAnnouncement } from '../../protocol/sync-answers.js';
import type { ActivityRecorder } from '../metrics/activity-recorder.js';
import { commitBundle, type CommitOutcome } from '../shared/commit-bundle.js';
import { JwtVerifier, checkedPrincipal, type SharedPrincipal } from '../shared/credentials.js';
import type { SharedSyncConfig } from '../shared/declarations.js';
import { pullBundles } from '../shared/pull.js';
import { abandonPush, beginPush, commitPush, uploadChunk, type Pusher } from '../shared/push-sessions.js';
import type { ScopeEvents } from '../shared/scope-events.js';
import { hasControlCharacter } from '../identifiers.js';
import { pgSafeText } from '../type-mapping.js';
import type { SnapshotBuilder } from '../shared/snapshots.js';
import type { Store } from '../store/store.js';
import { adminAuth, actorOf } from './admin-auth.js';
import { decodeBody } from './body.js';

/** An embedding app's authentication hook for two-way requests; throw (e.g. a SynclineError 'unauthorized') to refuse. */
export type SharedAuthenticate = (request: FastifyRequest) => SharedPrincipal | Promise<SharedPrincipal>;

export interface SharedRoutesOptions {
  store: Store;
  /** Counts pushes, pulls and snapshots, and notes each device's pull watermark. */
  activity: ActivityRecorder;
  config: SharedSyncConfig;
  verifier: JwtVerifier | undefined;
  /** The embedding app's own check of who calls (instead of the JWT verifier): the user, tenant and device source. */
  authenticate?: SharedAuthenticate;
  events: ScopeEvents;
  snapshots: SnapshotBuilder;
  adminToken: string;
  bodyLimit: number;
  logger: Logger;
  /** How often an idle event stream sends a comment, so proxies keep it open. */
  heartbeatMs?: number;
}

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new SynclineError('invalid_batch', `${what}: ${z.prettifyError(parsed.error).replaceAll('\n', '; ')}`);
  return parsed.data;
}

const SEQ = /^[0-9]{1,19}$/;

function seqParam(value: unknown, field: string, fallback?: bigint): bigint {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string' || !SEQ.test(value)) throw new SynclineError('invalid_request', `${field} must be a bundle sequence number`, { field });
  return BigInt(value);
}

function intParam(value: unknown, field: string, min: number, max: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  const n = typeof value === 'string' && /^[0-9]{1,10}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new SynclineError('invalid_request', `${field} must be a whole number from ${min} to ${max}`, { field });
  return n;
}

/**
 * Two-way sync for devices (JWT-authenticated; the scope and source come from
 * the token, never from a body) and server-side writes for operators.
 */
export async function sharedRoutes(app: FastifyInstance, options: SharedRoutesOptions): Promise<void> {
  const { store, config } = options;
  const scopeKind = config.tables[0]?.scope ?? 'user';
  const pushers = new WeakMap<FastifyRequest, Pusher>();
  const streams = new Set<FastifyReply>();
  // Set when the server begins to close: a stream started after preClose ended the open ones would never end.
  let closing = false;

  const verifier = options.verifier;
  const hook = options.authenticate;
  const principalOf: SharedAuthenticate = hook
    ? async (request) => checkedPrincipal(await hook(request))
    : verifier
      ? (request) => verifier.verify(request.headers[Headers.authorization], headerText(request.headers[SOURCE_HEADER]))
      : () => {
          throw new SynclineError('internal', 'two-way sync needs JWT settings or an authenticate hook');
        };
  const authenticate = async (request: FastifyRequest) => {
    const principal = await principalOf(request);
    const scope = JwtVerifier.scopeOf(principal, scopeKind);
    // The scope is stored as text: a claim PostgreSQL cannot hold is the token's fault, not the server's.
    if (!pgSafeText(scope) || hasControlCharacter(scope)) throw new SynclineError('unauthorized', `the token's ${scopeKind} claim cannot hold NUL, control characters or lone surrogates`);
    pushers.set(request, { scope, source: principal.source });
  };
  const who = (request: FastifyRequest) => pushers.get(request)!;
  const device = { onRequest: authenticate, preParsing: decodeBody(options.bodyLimit) };
  // Commits wake devices through PostgreSQL NOTIFY (see ScopeEvents), on this process and every other.
  const answered = (reply: FastifyReply, answer: CommitOutcome | PushAnswer) => {
    if (answer.status === 'conflict') reply.status(409);
    options.activity.push(answer);
    return answer;
  };

  app.get(SharedRoutes.config, { onRequest: authenticate }, async (request): Promise<SharedConfigAnswer> => {
    const { scope, source } = who(request);
    // Where a table lives on the server (its schema, its scope column) is no device's business.
    return { format_version: SHARED_FORMAT_VERSION, scope, source_id: source, tables: config.tables.map(({ schema: _schema, scope_column: _scope, ...table }) => table) };
  });

  app.post(SharedRoutes.push, device, async (request, reply) => {
    const begin = parse(pushBeginSchema, request.body, 'push');
    return answered(reply, await beginPush(store, config, who(request), begin));
  });

  app.put<{ Params: { id: string; index: string } }>(SharedRoutes.pushChunk, device, async (request) => {
    const chunk = parse(pushChunkSchema, request.body, 'push chunk');
    return uploadChunk(store, who(request), request.params.id, intParam(request.params.index, 'index', 0, SharedDefaults.maxBundleRows), chunk.rows);
  });

  app.post<{ Params: { id: string } }>(SharedRoutes.pushCommit, { onRequest: authenticate }, async (request, reply) => {
    return answered(reply, await commitPush(store, config, who(request), request.params.id));
  });

  app.delete<{ Params: { id: string } }>(SharedRoutes.pushSession, { onRequest: authenticate }, async (request, reply) => {
    await abandonPush(store, who(request), request.params.id);
    return reply.status(204).send();
  });

  app.get<{ Querystring: Record<string, string | undefined> }>(SharedRoutes.pull, { onRequest: authenticate }, async (request) => {
    const query = request.query;
    const target = query.target === undefined ? undefined : seqParam(query.target, 'target');
    const { scope, source } = who(request);
    const after = seqParam(query.after, 'after', 0n);
    const answer = await pullBundles(store, config, {
      scope,
      after,
      ...(query.after_ordinal === undefined ? {} : { afterOrdinal: intParam(query.after_ordinal, 'after_ordinal', 0, 2_147_483_647) }),
      ...(target === undefined ? {} : { target }),
      limit: intParam(query.limit, 'limit', 1, 50_000, SharedDefaults.chunkRows),
    });
    options.activity.pull(scope, source, after, answer);
    return answer;
  });

  app.post<{ Querystring: Record<string, string | undefined> }>(SharedRoutes.snapshots, { onRequest: authenticate }, async (request) => {
    const limit = request.query.limit;
    options.activity.snapshot();
    return options.snapshots.create(who(request), limit === undefined ? {} : { chunkRows: intParam(limit, 'limit', 1, 50_000) });
  });

  app.get<{ Params: { id: string; index: string } }>(SharedRoutes.snapshotChunk, { onRequest: authenticate }, async (request, reply) => {
    const body = await options.snapshots.chunk(who(request), request.params.id, intParam(request.params.index, 'index', 0, 2_147_483_647));
    return reply.type('application/json').send(body);
  });

  app.delete<{ Params: { id: string } }>(SharedRoutes.snapshot, { onRequest: authenticate }, async (request, reply) => {
    await options.snapshots.drop(who(request), request.params.id);
    return reply.status(204).send();
  });

  app.get(SharedRoutes.events, { onRequest: authenticate }, async (request, reply) => {
    const { scope } = who(request);
    const { rows } = await store.query<{ head_seq: string }>('SELECT head_seq::text AS head_seq FROM sync_scopes WHERE scope = $1', [scope]);
    if (closing) throw new SynclineError('unavailable', 'the server is stopping; reconnect to another or after its restart', {});
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const send = (head: string) => reply.raw.write(`event: bundle\ndata: ${JSON.stringify({ head_seq: head } satisfies BundleAnnouncement)}\n\n`);
    send(rows[0]?.head_seq ?? '0');
    const unsubscribe = options.events.subscribe(scope, send);
    const heartbeat = setInterval(() => reply.raw.write(': keep-alive\n\n'), options.heartbeatMs ?? 15_000);
    streams.add(reply);
    reply.raw.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(reply);
    });
  });
  // Event streams never end on their own; closing them lets the server stop.
  app.addHook('preClose', async () => {
    closing = true;
    for (const stream of streams) stream.raw.end();
  });
  app.addHook('onClose', async () => {
    options.snapshots.stop();
    await options.events.stop();
  });

  app.post<{ Params: { scope: string } }>(
    SharedRoutes.adminBundles,
    { onRequest: adminAuth(options, () => 'operator'), preParsing: decodeBody(options.bodyLimit) },
    async (request, reply) => {
      const body = parse(adminBundleSchema, request.body, 'bundle');
      const scope = request.params.scope;
      if (scope.length === 0 || scope.length > 200) throw new SynclineError('invalid_request', 'a scope is 1 to 200 characters', { field: 'scope' });
      if (!pgSafeText(scope) || hasControlCharacter(scope)) throw new SynclineError('invalid_request', 'a scope cannot hold NUL, control characters or lone surrogates', { field: 'scope' });
      const outcome = await commitBundle(store, config, {
        scope,
        source: `server:${actorOf(request).label}`.slice(0, 200),
        sourceBundleId: body.source_bundle_id,
        baseSeq: null,
        rows: body.rows,
      });
      return answered(reply, outcome);
    },
  );
}

export const adminBundleSchema = z.strictObject({
  source_bundle_id: z.string().min(1).max(100),
  rows: z.array(wireRowChangeSchema).min(1).max(SharedDefaults.maxBundleRows),
});

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
