import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Headers, Routes } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';
import { createAdminToken, listAdminTokens, revokeAdminToken, type AdminRole } from '../governance/admin-tokens.js';
import { approveReview } from '../governance/approve.js';
import { listAudit } from '../governance/audit.js';
import { getLineage } from '../query/lineages.js';
import { listProjects, setProjectCoalescing } from '../governance/coalescing.js';
import { idempotent } from '../governance/idempotency.js';
import { latestIntent, resumeLineage, retryRejectedRows } from '../governance/replay-intents.js';
import { parseApprove, parseClaim, parseProjectSettings, parsePurge, parseReject, parseRelease, parseRetryRejected, parseTokenCreate } from '../governance/requests.js';
import { claimReview, purgeStaged, rejectReview, releaseReview } from '../governance/review-actions.js';
import { getReviewDetail, listReviews } from '../governance/review-view.js';
import { parseStagedLimit, readStagedRows } from '../governance/staged-rows.js';
import { transactionWithRetry, type Queryable, type Store } from '../store/store.js';
import { resumeWithDevice } from '../flow-control/operator-actions.js';
import { actorOf, adminAuth } from './admin-auth.js';
import { decodeBody } from './body.js';

export interface GovernanceRoutesOptions {
  store: Store;
  adminToken: string;
  bodyLimit: number;
  /** Called after a decision that leaves staged rows to replay (the server wakes its replay worker). */
  onReplayRequested?: () => void;
}

type IdParams = { Params: { id: string } };

/** Routes only an admin may call: tokens and project settings. */
const ADMIN_ONLY = new Set<string>([Routes.adminTokens, Routes.adminTokenRevoke, Routes.projectSettings]);

/** Reads are a viewer's (the audit log included), token and project management an admin's, every other change an operator's. */
function roleFor(request: FastifyRequest): AdminRole {
  if (ADMIN_ONLY.has(request.routeOptions.url ?? '')) return 'admin';
  return request.method === 'GET' ? 'viewer' : 'operator';
}

function query(request: FastifyRequest): Record<string, string | undefined> {
  const raw = (request.query ?? {}) as Record<string, unknown>;
  const out: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') throw new SynclineError('invalid_request', `${key} must be given once`, { field: key });
    out[key] = value;
  }
  return out;
}

function idempotencyKey(request: FastifyRequest): string | undefined {
  const value = request.headers[Headers.idempotencyKey];
  if (Array.isArray(value)) throw new SynclineError('invalid_request', 'send one Idempotency-Key', { field: 'idempotency-key' });
  return value;
}

/** The schema review workflow, staged rows, replays, the audit log, role tokens and project settings. */
export async function governanceRoutes(app: FastifyInstance, options: GovernanceRoutesOptions): Promise<void> {
  const { store } = options;
  const body = { preParsing: decodeBody(options.bodyLimit) };
  app.addHook('onRequest', adminAuth(options, roleFor));

  /** Runs a change in one transaction, at most once per Idempotency-Key, then wakes the replay worker if asked. */
  async function change<T>(request: FastifyRequest, target: string, parsed: unknown, action: (tx: Queryable) => Promise<T>, replays = false): Promise<T> {
    const actor = actorOf(request);
    const asked = { route: request.routeOptions.url, target, body: parsed };
    const result = await transactionWithRetry(store, (tx) => idempotent(tx, { key: idempotencyKey(request), actorId: actor.id, request: asked }, () => action(tx)));
    if (replays) options.onReplayRequested?.();
    return result;
  }
  const label = (request: FastifyRequest) => actorOf(request).label;

  app.get(Routes.schemaReviews, async (request) => listReviews(store, query(request)));
  app.get<IdParams>(Routes.schemaReview, async (request) => getReviewDetail(store, request.params.id));
  app.post<IdParams>(Routes.schemaReviewClaim, body, async (request) => {
    const parsed = parseClaim(request.body);
    return change(request, request.params.id, parsed, (tx) => claimReview(tx, request.params.id, label(request), parsed));
  });
  app.post<IdParams>(Routes.schemaReviewRelease, body, async (request) => {
    const parsed = parseRelease(request.body);
    return change(request, request.params.id, parsed, (tx) => releaseReview(tx, request.params.id, parsed.action_version, label(request)));
  });
  app.post<IdParams>(Routes.schemaReviewApprove, body, async (request) => {
    const parsed = parseApprove(request.body);
    return change(request, request.params.id, parsed, (tx) => approveReview(tx, request.params.id, parsed, label(request)), true);
  });
  app.post<IdParams>(Routes.schemaReviewReject, body, async (request) => {
    const parsed = parseReject(request.body);
    return change(request, request.params.id, parsed, (tx) => rejectReview(tx, request.params.id, parsed, label(request)));
  });

  app.get<IdParams>(Routes.stagedRows, async (request) => {
    const q = query(request);
    return readStagedRows(store, request.params.id, { limit: parseStagedLimit(q.limit), ...(q.after ? { after: q.after } : {}), ...(q.schema_hash ? { schemaHash: q.schema_hash } : {}) });
  });
  app.post<IdParams>(Routes.purgeStaged, body, async (request) => {
    const parsed = parsePurge(request.body);
    return change(request, request.params.id, parsed, (tx) => purgeStaged(tx, request.params.id, parsed, label(request)));
  });
  // Flow control: resume also lets a device paused by backpressure or the circuit breaker send again.
  app.post<IdParams>(Routes.lineageResume, async (request) =>
    change(request, request.params.id, null, (tx) => resumeWithDevice(tx, request.params.id, () => resumeLineage(tx, request.params.id, label(request))), true),
  );
  app.post<IdParams>(Routes.lineageRetryRejected, body, async (request) => {
    const parsed = parseRetryRejected(request.body);
    return change(request, request.params.id, parsed, (tx) => retryRejectedRows(tx, request.params.id, label(request)), true);
  });
  app.get<IdParams>(Routes.lineageReplay, async (request) => {
    await getLineage(store, request.params.id); // 404 for a lineage that does not exist
    return { replay: await latestIntent(store, request.params.id) };
  });
  app.get(Routes.audit, async (request) => listAudit(store, query(request)));

  app.post(Routes.adminTokens, body, async (request, reply) => {
    const parsed = parseTokenCreate(request.body);
    return reply.status(201).send(await transactionWithRetry(store, (tx) => createAdminToken(tx, { ...parsed, createdBy: actorOf(request) })));
  });
  app.get(Routes.adminTokens, async () => ({ tokens: await listAdminTokens(store) }));
  app.post<IdParams>(Routes.adminTokenRevoke, async (request) => transactionWithRetry(store, (tx) => revokeAdminToken(tx, request.params.id, actorOf(request))));
  app.get(Routes.projects, async () => ({ projects: await listProjects(store) }));
  app.post<IdParams>(Routes.projectSettings, body, async (request) => {
    const parsed = parseProjectSettings(request.body);
    return change(request, request.params.id, parsed, (tx) => setProjectCoalescing(tx, request.params.id, parsed.coalescing, label(request)));
  });
}
