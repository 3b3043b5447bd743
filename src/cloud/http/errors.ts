import type { FastifyBaseLogger, FastifyError, FastifyInstance } from 'fastify';
import { SynclineError, isSynclineError } from '../../protocol/errors.js';

/** Fastify's own request errors, in the catalogue's words. */
const FASTIFY_CODES: Record<string, () => SynclineError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => new SynclineError('payload_too_large', 'request body is larger than the configured limit'),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new SynclineError('malformed_payload', 'body is not valid JSON'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new SynclineError('malformed_payload', 'body is empty'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new SynclineError('malformed_payload', 'body length does not match Content-Length'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => new SynclineError('malformed_payload', 'body must be application/json'),
};

/**
 * Turns anything thrown while serving a request into a SynclineError. Only this
 * front door decides HTTP statuses; a fault that is not a known client error is
 * `internal`, with a generic message (details go to the log, not to the caller).
 */
export function toSynclineError(error: unknown): SynclineError {
  if (isSynclineError(error)) return error;
  const fastifyError = error as Partial<FastifyError>;
  const known = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (known) return known();
  if (error instanceof SyntaxError) return new SynclineError('malformed_payload', 'body is not valid JSON');
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new SynclineError(status === 404 ? 'not_found' : status === 413 ? 'payload_too_large' : 'invalid_request', fastifyError.message ?? 'bad request');
  }
  return new SynclineError('internal', 'internal server error');
}

export function installErrorHandling(app: FastifyInstance, logger: FastifyBaseLogger): void {
  app.setErrorHandler((error, request, reply) => {
    const mapped = toSynclineError(error);
    if (mapped.status >= 500) logger.error({ err: error, method: request.method, url: request.url, context: mapped.context }, 'request failed');
    else logger.info({ code: mapped.code, method: request.method, url: request.url, context: mapped.context }, 'request refused');
    if (mapped.code === 'payload_too_large') reply.header('connection', 'close');
    return reply.status(mapped.status).send(mapped.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new SynclineError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`);
    return reply.status(error.status).send(error.toJSON());
  });
}
