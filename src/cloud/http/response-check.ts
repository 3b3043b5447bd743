import type { onSendAsyncHookHandler } from 'fastify';
import { z } from 'zod';
import { SynclineError } from '../../protocol/errors.js';
import { routeDoc } from './api-catalogue.js';

/**
 * onSend hook for tests (NODE_ENV=test): every JSON answer of a declared route
 * and status is checked against its schema, so each integration test that calls
 * the API also proves the OpenAPI document describes what the server sends. A
 * mismatch becomes an `internal` answer naming the route and the first issue.
 */
export const checkResponse: onSendAsyncHookHandler = async (request, reply, payload) => {
  if (typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').startsWith('application/json')) return payload;
  const answer = routeDoc(request.method, request.routeOptions.url)?.responses[reply.statusCode];
  if (!answer?.schema) return payload;
  const checked = answer.schema.safeParse(JSON.parse(payload));
  if (checked.success) return payload;
  const where = `${request.method} ${request.routeOptions.url} ${reply.statusCode}`;
  request.log.error({ route: where, issues: checked.error.issues.slice(0, 5) }, 'answer does not match its declared schema');
  throw new SynclineError('internal', `answer of ${where} does not match its declared schema: ${z.prettifyError(checked.error).split('\n').slice(0, 4).join('; ')}`);
};
