import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { Headers } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';
import { bearerToken } from '../auth/tokens.js';
import { authenticateAdmin, roleAllows, type Actor, type AdminRole } from '../governance/admin-tokens.js';
import type { Store } from '../store/store.js';

export interface AdminAuthOptions {
  store: Store;
  /** The bootstrap token the server was started with. */
  adminToken: string;
}

const actors = new WeakMap<FastifyRequest, Actor>();

/**
 * onRequest hook for admin routes: authenticates the bearer token (before any
 * body is read) and checks the role `need` names for the request.
 */
export function adminAuth(options: AdminAuthOptions, need: (request: FastifyRequest) => AdminRole): onRequestAsyncHookHandler {
  return async (request) => {
    const actor = await authenticateAdmin(options.store, options.adminToken, bearerToken(request.headers[Headers.authorization]));
    const role = need(request);
    if (!roleAllows(actor.role, role)) throw new SynclineError('forbidden', `this needs the ${role} role; the token has ${actor.role}`, { role, token_role: actor.role });
    actors.set(request, actor);
  };
}

/** The caller of a request that passed adminAuth. */
export function actorOf(request: FastifyRequest): Actor {
  const actor = actors.get(request);
  if (!actor) throw new SynclineError('internal', 'admin route without authentication');
  return actor;
}

/** Reads change nothing: viewers may; everything else on the device and lineage routes is an admin's. */
export const readOrAdmin = (request: FastifyRequest): AdminRole => (request.method === 'GET' ? 'viewer' : 'admin');
